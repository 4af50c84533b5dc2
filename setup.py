"""Build the Cython sources in ext/ into extension modules inside the galasim package."""
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


def extension(name: str) -> Extension:
    """``ext/<name>.pyx`` becomes the module ``galasim.<name>``."""
    return Extension(
        f"galasim.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[np.get_include(), "ext"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
    )


setup(
    ext_modules=cythonize(
        [extension(path.stem) for path in sorted(Path("ext").glob("*.pyx"))],
        compiler_directives=DIRECTIVES,
        include_path=["ext"],
    ),
)
