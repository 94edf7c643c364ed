"""``echoreg web``: the module's workflow in a browser, served from this machine (issue 15).

* :mod:`.session`: one page's scene and work, without any web code: open a cine (a server path or
  an upload kept in the session's temporary folder), myocardium from a labelmap or three landmarks
  placed in the view, the analysis in a worker thread with progress and cancel, the outputs shown
  with the Slicer module's display decisions (:mod:`..mrml.display`) in an offscreen Slicer slice
  view (:mod:`..mrml.render`), the strain table, curves and CSV.
* :mod:`.app`: the page (trame + Vuetify), bound to 127.0.0.1 unless told otherwise.
"""
