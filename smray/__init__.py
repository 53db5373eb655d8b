"""smray: soil moisture retrieval from passive-microwave brightness temperatures, on Ray."""

__version__ = "0.1.0"
