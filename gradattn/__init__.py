"""gradattn: reproducible companion to the GradAttn paper (arXiv 2603.26756).

Only torch and numpy are needed to import the package; optional packages
(matplotlib, pandas, medmnist, h5py, scipy, tqdm) are imported where used.
"""

__version__ = "0.1.0"
