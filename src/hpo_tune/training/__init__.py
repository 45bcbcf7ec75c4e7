"""Training and evaluation of one trial; knows nothing about strategies or tracking."""
