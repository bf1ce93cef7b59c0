"""Offline work, apart from serving: the synthetic ads data set with its ground truth, the
data-quality gate, and `scoremesh train`. No serving process imports this package."""
