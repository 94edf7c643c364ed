"""A slice view rendered offscreen with Slicer's own displayable managers, without Qt.

What Slicer's slice widget does, on a :class:`~.headless.StandaloneScene`: a ``vtkMRMLSliceLogic``
blends the layers of its composite node (background, foreground at its opacity) into one RGBA image,
drawn by a 2D image mapper in the bottom layer of an offscreen render window; the displayable
managers of ``vtkMRMLSliceViewDisplayableManagerFactory`` (the transforms manager draws the
deformation grid) draw in the layer above. VTK picks the OpenGL window at run time: EGL (Mesa's
llvmpipe without a GPU) unless ``VTK_DEFAULT_OPENGL_WINDOW`` names another one (e.g.
``vtkOSOpenGLRenderWindow`` with Debian's ``libosmesa6``).

:func:`render_slice_view` gives one PNG; :class:`SliceView` keeps the view for many frames (about
0.2 s a frame on one CPU core).
"""

from __future__ import annotations

import os

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .display import SliceLayers, apply_layers
from .headless import StandaloneScene

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no X server: skip VTK's try

# Displayable managers drawing the module's outputs in a slice view (the grid: transforms).
DISPLAYABLE_MANAGERS = ("vtkMRMLTransformsDisplayableManager2D", "vtkMRMLMarkupsDisplayableManager",
                        "vtkMRMLSegmentationsDisplayableManager2D")
DEFAULT_SIZE = (400, 400)  # pixels (width, height)


class SliceView:
    """One offscreen slice view of ``env``'s scene (its own slice and slice composite nodes, axial
    until :meth:`show` turns it to the background's plane); :meth:`close` removes them again.

    Args:
        env: the scene with its application and Sequences logics.
        size: (width, height) in pixels.
        name: slice node (layout) name, not used by another view of the scene.

    Raises:
        RuntimeError: VTK could not make an OpenGL context (no EGL / OSMesa library).
    """

    def __init__(self, env: StandaloneScene, size: tuple[int, int] = DEFAULT_SIZE,
                 name: str = "EchoRegistration") -> None:
        self.env, self.size = env, (int(size[0]), int(size[1]))
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(env.scene)
        self.logic = slicer.vtkMRMLSliceLogic()
        self._closed = False  # from here on, __del__ detaches the logic even if the view is never whole
        self.logic.SetMRMLScene(env.scene)
        self.logic.SetMRMLApplicationLogic(env.application)
        if env.scene.GetSingletonNode(name, "vtkMRMLSliceNode") is not None:
            raise ValueError(f"the scene has a slice view named '{name}' already")
        self.slice_node = self.logic.AddSliceNode(name)
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(True)
        self.window.SetSize(*self.size)
        self.window.SetNumberOfLayers(2)
        image_renderer, self.renderer = vtk.vtkRenderer(), vtk.vtkRenderer()
        for layer, renderer in enumerate((image_renderer, self.renderer)):
            renderer.SetLayer(layer)
            self.window.AddRenderer(renderer)
        self._interactor = vtk.vtkRenderWindowInteractor()  # displayable managers observe it
        self._interactor.SetRenderWindow(self.window)
        self._interactor.Initialize()
        if not self.window.SupportsOpenGL():
            raise RuntimeError(f"{self.window.GetClassName()} has no OpenGL context: install EGL or "
                               "OSMesa (Debian libegl1 / libosmesa6)")
        self._mapper = vtk.vtkImageMapper()
        self._mapper.SetColorWindow(255.0)
        self._mapper.SetColorLevel(127.5)
        actor = vtk.vtkActor2D()
        actor.SetMapper(self._mapper)
        image_renderer.AddViewProp(actor)
        factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        factory.SetMRMLApplicationLogic(env.application)
        for manager in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(manager):
                factory.RegisterDisplayableManager(manager)
        self._managers = factory.InstantiateDisplayableManagers(self.renderer)
        self._managers.SetMRMLDisplayableNode(self.slice_node)
        self.logic.ResizeSliceNode(*self.size)

    def show(self, layers: SliceLayers) -> None:
        """Show ``layers``, the view turned to the background's plane and fitted to it."""
        apply_layers(self.logic.GetSliceCompositeNode(), layers)
        self.slice_node.RotateToVolumePlane(layers.background)
        self.logic.FitSliceToBackground(*self.size)

    def ras_at(self, column: float, row: float) -> np.ndarray:
        """(3,) RAS mm of the view pixel at ``column``, ``row`` (top row 0, as in :meth:`pixels`),
        in the slice plane."""
        xy = np.array([column, self.size[1] - 1 - row, 0.0, 1.0])  # VTK's y runs upwards
        return (slicer.util.arrayFromVTKMatrix(self.slice_node.GetXYToRAS()) @ xy)[:3]

    def pixels(self) -> np.ndarray:
        """(height, width, 3) uint8 RGB of the view as it is now, top row first."""
        self._mapper.SetInputConnection(self.logic.GetImageDataConnection())  # changes with the layers
        self.window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        rgb = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, 3)
        return np.ascontiguousarray(rgb[::-1])

    def png(self) -> bytes:
        """The view as it is now, PNG-encoded."""
        return png_bytes(self.pixels())

    def close(self) -> None:
        """Stop drawing, remove the view's slice and slice composite nodes from the scene and detach
        its slice logic from the scene and the application logic (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        self._managers.SetMRMLDisplayableNode(None)
        self._mapper.RemoveAllInputConnections(0)
        for node in (self.logic.GetSliceCompositeNode(), self.slice_node):
            if node is not None and node.GetScene() is not None:
                self.env.scene.RemoveNode(node)
        self._detach()
        self.window.Finalize()

    def _detach(self) -> None:
        """Stop the slice logic observing the scene and the application logic."""
        self.logic.SetMRMLApplicationLogic(None)
        self.logic.SetMRMLScene(None)

    def __del__(self) -> None:
        # A view never closed (the web page's lives as long as its session) must still let go of the
        # scene before the scene's logics are destroyed: at interpreter exit the Colors logic, removing
        # its colour nodes, notified a slice logic already freed, and the process died (exit 139).
        if not getattr(self, "_closed", True):
            self._detach()


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an (H, W, 3) uint8 image (top row first)."""
    h, w, _ = rgb.shape
    image = vtk.vtkImageData()
    image.SetDimensions(w, h, 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(
        np.ascontiguousarray(rgb[::-1]).reshape(-1, 3), deep=True))
    writer = vtk.vtkPNGWriter()
    writer.WriteToMemoryOn()
    writer.SetInputData(image)
    writer.Write()
    return bytes(numpy_support.vtk_to_numpy(writer.GetResult()))


def render_slice_view(env: StandaloneScene, layers: SliceLayers,
                      browser: slicer.vtkMRMLSequenceBrowserNode | None = None, frame: int | None = None,
                      size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """PNG of a slice view of ``env``'s scene showing ``layers`` (see :mod:`.display`), at item
    ``frame`` of ``browser`` when both are given (the browser stays there).

    Raises:
        IndexError: ``frame`` outside the browser's items.
        RuntimeError: no OpenGL context (see :class:`SliceView`).
    """
    if browser is not None and frame is not None:
        env.select_frame(browser, frame)
    view = SliceView(env, size)
    try:
        view.show(layers)
        return view.png()
    finally:
        view.close()
