"""Learned dynamics models: vectorised ensembles, fitting, uncertainty."""

from forethought.models.dynamics import DynamicsModel, ModelConfig
from forethought.models.ensemble import EnsembleLinear, EnsembleMLP
from forethought.models.fitting import FitConfig, FitReport, ModelTrainer
from forethought.models.uncertainty import Uncertainty, decompose

__all__ = [
    "DynamicsModel",
    "EnsembleLinear",
    "EnsembleMLP",
    "FitConfig",
    "FitReport",
    "ModelConfig",
    "ModelTrainer",
    "Uncertainty",
    "decompose",
]
