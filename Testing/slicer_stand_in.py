"""Run the module file as an older 3D Slicer would load it, outside Slicer: ``python3.9
slicer_stand_in.py EchoRegistration.py``. Stand-ins replace the modules that only the Slicer
application has (``qt``, ``vtk``, ``slicer`` with its ``i18n``, ``parameterNodeWrapper``,
``ScriptedLoadableModule`` and ``util``); the module file itself runs unchanged. Then the Widget's
``setup()`` runs and the text of the label it adds is printed. Used by test_slicer_module_ui.py."""

import importlib.util
import sys
import types


class Anything:
    """A class of any name: instances accept any arguments and attribute."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __getattr__(self, name):
        return Anything()

    def __call__(self, *args, **kwargs):
        return Anything()


class Layout:
    def __init__(self):
        self.widgets = []

    def addWidget(self, widget):
        self.widgets.append(widget)

    def addStretch(self, stretch):
        pass


class QLabel:
    def __init__(self, text):
        self.text = text
        self.wordWrap = False


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent

    def setup(self):
        self.layout = Layout()


def module(name, **attributes):
    stand_in = types.ModuleType(name)
    stand_in.__dict__.update(attributes)
    stand_in.__getattr__ = lambda attribute: type(attribute, (Anything,), {})
    sys.modules[name] = stand_in
    return stand_in


module("qt", QLabel=QLabel)
module("vtk")
slicer = module("slicer")
slicer.i18n = module("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text)
slicer.parameterNodeWrapper = module("slicer.parameterNodeWrapper", parameterNodeWrapper=lambda cls: cls)
slicer.ScriptedLoadableModule = module("slicer.ScriptedLoadableModule",
                                       ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget)
slicer.util = module("slicer.util", VTKObservationMixin=Anything)

spec = importlib.util.spec_from_file_location("EchoRegistration", sys.argv[1])
echo_registration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(echo_registration)
widget = echo_registration.EchoRegistrationWidget()
widget.setup()
widget.enter()  # does nothing where setup stopped
print(" ".join(w.text for w in widget.layout.widgets))
