"""Training recipes for the models bundled with BatchLib.

:mod:`antibodies.training.train_nuclei_model` trains the bundled StarDist2D
nucleus model on project-generated synthetic data::

    python -m antibodies.training.train_nuclei_model --out antibodies/models --name vero_nuclei_v2

The sub-module is not imported here, so ``python -m`` runs it cleanly and
importing the package stays free of tensorflow.
"""

__all__ = []
