"""Packages of the wheel: EchoRegistrationLib and its subpackages, plus the shipped DLIR models
(``Resources/Models``, where the Slicer extension and a source checkout keep them) installed as the
package data folder ``EchoRegistrationLib/Models``, where :mod:`EchoRegistrationLib.dlir.shipped` finds
them after ``pip install``. The project's metadata is in pyproject.toml."""

from setuptools import find_packages, setup

MODELS_PACKAGE = "EchoRegistrationLib.Models"

setup(
    packages=[*find_packages(include=["EchoRegistrationLib", "EchoRegistrationLib.*"]), MODELS_PACKAGE],
    package_dir={MODELS_PACKAGE: "Resources/Models"},
    package_data={MODELS_PACKAGE: ["*/model.safetensors", "*/model.json", "*/README.md"]},
)
