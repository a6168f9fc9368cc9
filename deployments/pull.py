"""Deployment pull step: start every flow run in the project folder of the machine or image it runs on.

Not Prefect's `set_working_directory` with `{{ $SHIPSHAPE_PROJECT_DIR }}`: `prefect deploy` would resolve
that variable on the deploying machine whenever it is set there, baking a host path into deployments
that run in containers. This step reads it where the run happens.
"""

from __future__ import annotations

import os

from shipshape.settings import load_settings


def enter_project_dir() -> dict[str, str]:
    directory = load_settings().project_dir
    os.chdir(directory)
    return {"directory": str(directory)}
