"""The production deployment, rehearsed on this machine from the files production uses.

`make rehearse` reads `infra/cloudformation/`, builds the stacks against moto (AWS) and a real
PostgreSQL, and runs every ECS task that the stacks and Dagster start (the services, each run,
each step) as a process with exactly the environment ECS would give it. See `topology.py`.
Needs the test tools (moto): `make setup-dev`.
"""
