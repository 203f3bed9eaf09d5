"""Recurrent neural networks as noisy systems: training through the minimal action."""

from ._ctrnn import CTRNN as CTRNN, ctrnn_drift as ctrnn_drift
