"""Defences: one file per method. Detectors return a Detection and see only what a defender has.

See Also: labkit.registry.DEFENCES
"""
from . import monitoring, provenance
from .activation_clustering import activation_clustering
from .audit import audit
from . import aggregation
from .base import flag_top
from .confident_learning import confident_learning
from .deep_knn import deep_knn
from .feature_outliers import feature_outliers
from .forensics import trace_incident
from .dp_sgd import dp_sgd
from .dpa import certified_accuracy, dpa
from .gradient_audit import gradient_audit
from .keyword_label import keyword_label
from .knn_sanitisation import knn_sanitisation
from .onion import onion
from .rag import near_duplicates, robust_rag, signed_passages
from .spectral_signature import signature_strength, spectral_scores, spectral_signature, spectral_signature_paper
from .strip import strip, strip_report

__all__ = ["flag_top", "aggregation", "dp_sgd", "gradient_audit", "confident_learning", "dpa", "certified_accuracy", "knn_sanitisation",
           "spectral_scores", "spectral_signature", "spectral_signature_paper", "signature_strength", "activation_clustering", "strip",
           "strip_report",
           "audit", "monitoring", "provenance", "deep_knn", "feature_outliers", "trace_incident", "onion", "keyword_label",
           "near_duplicates", "signed_passages", "robust_rag"]
