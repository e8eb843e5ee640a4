"""Build script: the package metadata lives in setup.cfg; this file adds the Cython kernels."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def kernel(name: str, package: str = "kernels") -> Extension:
    """tfxc/<package>/<name>.pyx, optimised and multi-threaded with OpenMP (prange)."""
    return Extension(
        f"tfxc.{package}.{name}",
        [f"tfxc/{package}/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=cythonize(
        # metrics hit test; MACH gather; tree pairs; per-row top-k of CSR matrices; the tree's 2-means; Adam's rows
        [kernel("_hits"), kernel("_mach"), kernel("_pairs"), kernel("_rows"), kernel("_kmeans"),
         kernel("_adam", package="optimizers")],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
