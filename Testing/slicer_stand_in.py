"""Run the module file as an older 3D Slicer would load it, outside Slicer: ``python3.9
slicer_stand_in.py EchoRegistration.py``. Stand-ins replace the modules that only the Slicer
application has (``qt``, ``vtk``, ``slicer`` with its ``i18n``, ``parameterNodeWrapper``,
``ScriptedLoadableModule`` and ``util``); the module file itself runs unchanged. Then the Widget's
``setup()`` runs and the text of the label it adds is printed. Used by test_slicer_module_ui.py.

:func:`stand_in_modules` also serves the tests that run the module's Logic on slicer-core's real MRML:
they take the stand-ins of the Qt-side modules only (``qt``, ``slicer.i18n``, ...)."""

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
    """A stand-in module ``name`` with ``attributes``; any other attribute is a class of that name."""
    stand_in = types.ModuleType(name)
    stand_in.__dict__.update(attributes)
    stand_in.__getattr__ = lambda attribute: type(attribute, (Anything,), {})
    return stand_in


def stand_in_modules():
    """{module name: stand-in} for every module of Slicer's application the module file imports."""
    slicer = module("slicer")
    slicer.i18n = module("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text)
    slicer.parameterNodeWrapper = module("slicer.parameterNodeWrapper", parameterNodeWrapper=lambda cls: cls)
    slicer.ScriptedLoadableModule = module("slicer.ScriptedLoadableModule",
                                           ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget)
    slicer.util = module("slicer.util", VTKObservationMixin=Anything)
    modules = {"qt": module("qt", QLabel=QLabel), "vtk": module("vtk"), "slicer": slicer}
    modules.update({m.__name__: m for m in (slicer.i18n, slicer.parameterNodeWrapper,
                                            slicer.ScriptedLoadableModule, slicer.util)})
    return modules


def load_module_file(path, name="EchoRegistration"):
    """Execute the module file ``path`` as module ``name`` (with whatever ``sys.modules`` holds)."""
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


if __name__ == "__main__":
    sys.modules.update(stand_in_modules())
    widget = load_module_file(sys.argv[1]).EchoRegistrationWidget()
    widget.setup()
    widget.enter()  # does nothing where setup stopped
    print(" ".join(w.text for w in widget.layout.widgets))
