"""Build of the C runtime extension (edgebrew._libedgebrew) with cffi; everything else about the
package is in pyproject.toml. See edgebrew/runtime/_build_libedgebrew.py."""
from setuptools import setup

setup(cffi_modules=["edgebrew/runtime/_build_libedgebrew.py:ffibuilder"])
