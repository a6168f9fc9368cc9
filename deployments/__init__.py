"""Deployments: where and when declared pipelines run, generated from the declarations."""
