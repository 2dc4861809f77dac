"""BasinWatch engine: registry in, classified enterprises and verdicts out."""
