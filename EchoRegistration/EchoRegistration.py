"""EchoRegistration: deep-learning registration of echocardiography sequences in 3D Slicer.

This file registers the module with Slicer. The panel, the MRML logic and the module test arrive with
the Slicer-module work; the computation lives in ``EchoRegistrationLib`` (importable without Slicer).
"""

from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class EchoRegistration(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Echo Registration"
        self.parent.categories = ["Ultrasound"]
        self.parent.dependencies = ["Sequences"]
        self.parent.contributors = ["EchoRegistration developers"]
        self.parent.helpText = (
            "Register every frame of an echocardiography cine to a reference frame and measure "
            "myocardial strain. See the project README for what works today."
        )
        self.parent.acknowledgementText = (
            "Built on 3D Slicer, PyTorch and SimpleITK. Test data: CAMUS (Leclerc et al., IEEE TMI 2019)."
        )
