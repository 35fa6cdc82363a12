"""PyInstaller runtime hook: a stand-in for PyAV, which the sp2p binary does not bundle.

aiortc imports PyAV (FFmpeg, about 100 MB) at module level for its audio/video codecs.
sp2p only uses data channels, which never touch a codec, so the binary excludes `av`
and this hook answers every `import av...` with a stub module. Any attribute of a stub
module is a placeholder class that raises if someone actually tries to use media.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

_MESSAGE = "audio/video codecs (PyAV) are not bundled in the sp2p binary; data channels only"


class _StubModule(types.ModuleType):
    """A module whose every public attribute is a placeholder class, created on first use."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stub for {name}: {_MESSAGE}")
        self.__path__: list[str] = []  # a package, so `import av.video.codeccontext` works
        self.__version__ = "0+sp2p-stub"

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def unavailable(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError(_MESSAGE)

        # A distinct class per name keeps isinstance() checks meaningful (always False).
        placeholder = type(attr, (), {"__init__": unavailable, "__module__": self.__name__})
        setattr(self, attr, placeholder)
        return placeholder


class _AvStubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "av" or fullname.startswith("av."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StubModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    if not any(isinstance(f, _AvStubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AvStubFinder())


install()
