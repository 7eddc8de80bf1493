"""The report's parts that know nothing of MLflow: interval arithmetic (``stats``), tables in
markdown, CSV and LaTeX (``tables``), figures (``figures``) and the self-contained HTML page
(``html``). ``genre_models.stages.report`` feeds them runs from the tracking store."""
