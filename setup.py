"""The package list for setuptools; all other metadata is in pyproject.toml.

Packages are found, not listed by hand, so a new sub-package cannot be left out of the wheel. Two folders outside
``owleval/`` are installed inside it: ``adapters/`` as ``owleval.adapters`` and ``data/owleval_82q/`` (the data-set
manifest) as ``owleval.dataset_manifest``.
"""

from setuptools import find_packages, setup

MAPPED_FOLDERS = {"owleval.adapters": "adapters", "owleval.dataset_manifest": "data/owleval_82q"}


def all_packages() -> list[str]:
    packages = find_packages(include=["owleval", "owleval.*"])
    for package, folder in MAPPED_FOLDERS.items():
        packages += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]
    return packages


setup(packages=all_packages(), package_dir=MAPPED_FOLDERS)
