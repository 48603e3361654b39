"""The detector interface and registry."""
from .base import Detector, SweepDetector, check_score_map
from .registry import available_detectors, get_detector, register_detector

__all__ = ["Detector", "SweepDetector", "check_score_map", "available_detectors", "get_detector",
           "register_detector"]
