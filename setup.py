"""Install ntm_ref (the model), gradcheck (the checker) and tasks (the paper's tasks)."""
from setuptools import setup

setup(
    name="ntm_ref",
    version="0.1.0",
    description="A from-scratch NumPy reference Neural Turing Machine with hand-written, "
    "finite-difference-checked backward passes",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=["ntm_ref", "ntm_ref.engines", "gradcheck", "tasks"],
    python_requires=">=3.10",
    install_requires=["numpy>=1.26", "scipy>=1.11"],
    extras_require={
        # matplotlib: the plot tests; pytest-xdist: the suite runs on every core (pytest.ini: -n auto)
        # dask: the sweep tests (tests/test_sweep.py), so that the README's test command runs them too
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6.80", "matplotlib>=3.7", "dask[distributed]>=2024.1"],
        "plot": ["matplotlib>=3.7"],
        "sweep": ["dask[distributed]>=2024.1"],   # ntm-ref sweep
        "torch": ["torch==2.13.0"],     # ntm-ref import pytorch-ntm; the PyTorch cross-checks of the tests
    },
    entry_points={"console_scripts": ["ntm-ref=ntm_ref.cli:main"]},
    license="MIT",
)
