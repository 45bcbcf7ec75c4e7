"""The app's own package: named ``src`` like many projects', which the hpo sweeper must not shadow."""
