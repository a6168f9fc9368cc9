"""Infrastructure as code: what pipelines run on (warehouse structure now; pools and blocks per environment next)."""
