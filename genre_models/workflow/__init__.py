"""Layer 6, workflow: the get-or-run layer, the only place that knows which stage needs which.

In the spirit of MLflow's multistep-workflow example: before a stage runs, its prerequisites
are resolved here by reusing a FINISHED matching run or running the prerequisite stage first.
"""
