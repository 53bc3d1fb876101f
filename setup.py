from setuptools import find_packages, setup

setup(
    name="distillkit",
    version="0.1.0",
    description="Config-driven knowledge distillation for PyTorch vision models",
    packages=find_packages(include=["distillkit", "distillkit.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.1", "torchvision>=0.16", "pyyaml>=5.4", "einops>=0.6", "timm>=0.9",
                      "numpy", "scikit-learn>=1.0"],
    extras_require={"test": ["pytest>=7", "matplotlib", "tensorboard"], "tensorboard": ["tensorboard"],
                    "plot": ["matplotlib"]},
    entry_points={"console_scripts": ["distillkit=distillkit.cli:main"]},
)
