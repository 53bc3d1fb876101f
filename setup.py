"""A thin shim: the metadata lives in pyproject.toml (``pip install -e .`` reads it)."""
from setuptools import setup

setup()
