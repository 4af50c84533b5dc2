"""Build the Cython sources in ext/ into extension modules inside the galasim package.

GALASIM_CYTHON_DEBUG=1 builds with bounds, wraparound and initialisation checks on (as
scikit-learn's SKLEARN_ENABLE_DEBUG_CYTHON_DIRECTIVES): an out-of-bounds read then raises instead
of producing a number. `make test` runs the differential tests against such a build too.
"""
import os
import shutil
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3"]
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}
DEBUG = os.environ.get("GALASIM_CYTHON_DEBUG") == "1"
if DEBUG:
    DIRECTIVES.update(boundscheck=True, wraparound=True, initializedcheck=True)


# Cython finds the declarations of module `galasim.X` as `galasim/X.pxd` on its include path, so
# the .pxd files of ext/ are staged under build/pxd/galasim/ (this also lets one extension
# `cimport galasim._mixing_kernels`).
PXD_ROOT = Path("build") / "pxd"
(PXD_ROOT / "galasim").mkdir(parents=True, exist_ok=True)
(PXD_ROOT / "galasim" / "__init__.pxd").touch()
for pxd in Path("ext").glob("*.pxd"):
    shutil.copyfile(pxd, PXD_ROOT / "galasim" / pxd.name)


def extension(name: str) -> Extension:
    """``ext/<name>.pyx`` becomes the module ``galasim.<name>``."""
    return Extension(
        f"galasim.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("GALASIM_DEBUG", str(int(DEBUG)))],
        extra_compile_args=COMPILE_ARGS,
    )


setup(
    ext_modules=cythonize(
        [extension(path.stem) for path in sorted(Path("ext").glob("*.pyx"))],
        compiler_directives=DIRECTIVES,
        include_path=[str(PXD_ROOT)],
        # The debug build writes its C files elsewhere and always regenerates them: a C file
        # generated with other directives must never be reused by either build.
        build_dir="build/cython-debug" if DEBUG else None,
        force=DEBUG,
    ),
)
