"""The production deployment on this machine, made from the files production uses.

`Rehearsal` builds the four stacks of `infra/cloudformation/` against moto, as CloudFormation
would, and starts each ECS service's task as a process (`ecs.py`):

- `storage.yaml` and `platform-access.yaml` are created by moto's own CloudFormation;
- `mlflow-server.yaml` and `dagster.yaml` use resources moto's CloudFormation cannot create,
  so they are read here (`template.py`): each resource a task definition names is made when
  it is first needed, in moto (secrets, roles, log groups, the cluster, the task definitions)
  or on this machine (each RDS instance is a database of one real PostgreSQL, with the master
  user and password that its Secrets Manager secret holds);
- the services' tasks start from their task definitions in moto, so what runs is what the
  template says: its command, its environment and its secrets.

What stands in for AWS's network, and nothing else: AWS is at `AWS_ENDPOINT_URL` (moto), every
task shares 127.0.0.1 (so container ports map to ports here, and the code location's private
DNS name to 127.0.0.1), and a load balancer's DNS name is its service's address.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import string
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from penguins_platform.project import PROJECT_ROOT
from penguins_platform.rehearsal import aws
from penguins_platform.rehearsal.ecs import Agent, ContainerWorld, RehearsalError, wait_until
from penguins_platform.rehearsal.postgres import PostgresCluster, running_cluster
from penguins_platform.rehearsal.template import Stack, TemplateError, parse
from penguins_platform.serving.service import free_port

INFRA = PROJECT_ROOT / "infra"
PREFIX = "penguins"
REGION = "us-east-1"
LOCATION = "penguins_platform"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
# A resource's properties, and what the rehearsal made of it: its Ref and attributes.
Properties = Mapping[str, Any]
Made = dict[str, str]
_DYNAMIC_SECRET = re.compile(r"\{\{resolve:secretsmanager:(.+?):SecretString:(\w+)\}\}")


def camel(value: Any, keep: bool = False) -> Any:
    """CloudFormation's property names as the ECS API spells them (`ContainerDefinitions`
    -> `containerDefinitions`); a log driver's `Options` keep their own names."""
    if isinstance(value, list):
        return [camel(item) for item in value]
    if not isinstance(value, dict):
        return value
    if keep:
        return dict(value)
    return {
        key[:1].lower() + key[1:]: camel(item, keep=key == "Options") for key, item in value.items()
    }


@dataclass
class Clients:
    """boto3 clients of the rehearsal itself (not of the tasks), all pointed at moto."""

    url: str
    region: str
    _made: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            import boto3

            session = boto3.session.Session(
                aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal",
                region_name=self.region,
            )  # fmt: skip
            self._made[service] = session.client(service, endpoint_url=self.url)
        return self._made[service]


class LazyProperties(Mapping[str, Any]):
    """A resource's properties, each resolved when read: the rehearsal makes only what the
    tasks need, so a property it never reads (a database's subnet group) is never made."""

    def __init__(self, stack: Stack, raw: Mapping[str, Any]) -> None:
        self.stack = stack
        self.raw = raw

    def __getitem__(self, key: str) -> Any:
        return self.stack.resolve(self.raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


class Provisioner:
    """Makes a template's resource when the stack first resolves its name or an attribute."""

    def __init__(
        self, clients: Clients, postgres: PostgresCluster, vpc: str, ports: Mapping[int, int]
    ) -> None:
        self.clients = clients
        self.postgres = postgres
        self.vpc = vpc
        self.ports = ports
        self.stack: Stack | None = None
        self.made: dict[str, dict[str, str]] = {}

    def attach(self, stack: Stack) -> Stack:
        self.stack = stack
        stack.lookup = self
        return stack

    def __call__(self, logical_id: str, attribute: str | None) -> str:
        assert self.stack is not None, "attach() first"
        if logical_id not in self.made:
            resource = self.stack.resource(logical_id)
            make = getattr(self, "_" + resource["Type"].replace("::", "_").lower(), None)
            if make is None:
                raise TemplateError(
                    f"{self.stack.name}: the rehearsal does not stand in for {logical_id} "
                    f"({resource['Type']})"
                )
            properties = LazyProperties(self.stack, resource.get("Properties", {}))
            self.made[logical_id] = make(logical_id, properties)
        values = self.made[logical_id]
        key = attribute or "Ref"
        if key not in values:
            raise TemplateError(f"{self.stack.name}: {logical_id} has no attribute {key}")
        return values[key]

    def _name(self, logical_id: str) -> str:
        assert self.stack is not None
        return f"{self.stack.name}-{logical_id}"[:60]

    def _aws_logs_loggroup(self, logical_id: str, properties: Properties) -> Made:
        name = properties.get("LogGroupName") or self._name(logical_id)
        self.clients("logs").create_log_group(logGroupName=name)
        arn = f"arn:aws:logs:{self.clients.region}:{aws.ACCOUNT}:log-group:{name}"
        return {"Ref": name, "Arn": f"{arn}:*"}

    def _aws_ecs_cluster(self, logical_id: str, properties: Properties) -> Made:
        name = properties.get("ClusterName") or self._name(logical_id)
        arn = self.clients("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"]
        return {"Ref": name, "Arn": arn}

    def _aws_secretsmanager_secret(self, logical_id: str, properties: Properties) -> Made:
        if "GenerateSecretString" in properties:
            spec = properties["GenerateSecretString"]
            alphabet = string.ascii_letters + string.digits
            if not spec.get("ExcludePunctuation"):
                alphabet += "!#$%&*+-.:;<=>?@^_~"
            generated = "".join(
                secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32)))
            )
            if "GenerateStringKey" in spec:
                value = json.loads(spec.get("SecretStringTemplate") or "{}")
                value[spec["GenerateStringKey"]] = generated
                text = json.dumps(value)
            else:
                text = generated
        else:
            text = properties["SecretString"]
        arn = self.clients("secretsmanager").create_secret(
            Name=properties.get("Name") or self._name(logical_id), SecretString=text
        )["ARN"]
        return {"Ref": arn, "Id": arn}

    def _aws_iam_role(self, logical_id: str, properties: Properties) -> Made:
        name = properties.get("RoleName") or self._name(logical_id)
        iam = self.clients("iam")
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"]),
        )["Role"]
        for policy in properties.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )  # fmt: skip
        return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _aws_ec2_securitygroup(self, logical_id: str, properties: Properties) -> Made:
        group = self.clients("ec2").create_security_group(
            GroupName=self._name(logical_id),
            Description=properties.get("GroupDescription", logical_id),
            VpcId=self.vpc,
        )["GroupId"]
        return {"Ref": group, "GroupId": group}

    def _aws_rds_dbinstance(self, logical_id: str, properties: Properties) -> Made:
        """A database of the rehearsal's PostgreSQL, owned by the instance's master user."""
        user = self._dynamic(properties["MasterUsername"])
        password = self._dynamic(properties["MasterUserPassword"])
        self.postgres.create_role(user, password)
        self.postgres.create_database(properties.get("DBName") or user, owner=user)
        return {
            "Ref": self._name(logical_id),
            "Endpoint.Address": self.postgres.host,
            "Endpoint.Port": str(self.postgres.port),
        }

    def _dynamic(self, text: str) -> str:
        """CloudFormation's `{{resolve:secretsmanager:...}}`, read from Secrets Manager."""

        def read(match: re.Match[str]) -> str:
            secret = self.clients("secretsmanager").get_secret_value(SecretId=match.group(1))
            return str(json.loads(secret["SecretString"])[match.group(2)])

        return _DYNAMIC_SECRET.sub(read, text)

    def _aws_ecs_taskdefinition(self, logical_id: str, properties: Properties) -> Made:
        definition = camel(dict(properties))
        arn = self.clients("ecs").register_task_definition(**definition)["taskDefinition"][
            "taskDefinitionArn"
        ]
        return {"Ref": arn, "TaskDefinitionArn": arn}

    def _aws_elasticloadbalancingv2_loadbalancer(
        self, logical_id: str, properties: Properties
    ) -> Made:
        """The address of the service behind it: the load balancer forwards to one port."""
        assert self.stack is not None
        ports = [
            mapping["ContainerPort"]
            for resource in self.stack.template["Resources"].values()
            if resource["Type"] == "AWS::ECS::Service"
            for mapping in resource["Properties"].get("LoadBalancers", [])
        ]
        address = f"127.0.0.1:{self.ports[int(ports[0])]}"
        return {"Ref": self._name(logical_id), "DNSName": address}

    def _aws_servicediscovery_privatednsnamespace(
        self, logical_id: str, properties: Properties
    ) -> Made:
        return {"Ref": self._name(logical_id), "Id": self._name(logical_id)}

    def _aws_servicediscovery_service(self, logical_id: str, properties: Properties) -> Made:
        return {"Ref": self._name(logical_id), "Arn": self._name(logical_id)}


def private_names(stack: Stack) -> list[str]:
    """The DNS names Cloud Map gives the stack's services (`<service>.<namespace>`)."""
    names = []
    for resource in stack.template["Resources"].values():
        if resource["Type"] != "AWS::ServiceDiscovery::Service":
            continue
        properties = resource["Properties"]
        namespace_id = properties["NamespaceId"]["Ref"]
        namespace = stack.resolve(stack.resource(namespace_id)["Properties"]["Name"])
        names.append(f"{stack.resolve(properties['Name'])}.{namespace}")
    return names


def container_ports(*templates: dict[str, Any]) -> list[int]:
    return sorted(
        {
            int(mapping["ContainerPort"])
            for template in templates
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::ECS::TaskDefinition"
            for container in resource["Properties"]["ContainerDefinitions"]
            for mapping in container.get("PortMappings", [])
        }
    )


class Rehearsal:
    """The four stacks, their services running as processes, until the block ends."""

    def __init__(
        self, root: Path, infra: Path = INFRA, region: str = REGION, tracking_server: bool = True
    ) -> None:
        """`tracking_server=False` leaves the MLflow stack's service unstarted (its resources
        and outputs still exist), for a rehearsal that fails before any run reaches MLflow."""
        self.root = root
        self.infra = infra
        self.region = region
        self.tracking_server = tracking_server
        self.image = f"{aws.ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{PREFIX}:rehearsal"
        self.stacks: dict[str, Stack] = {}
        self.agent: Agent | None = None
        # From nothing to a webserver that lists the code location, once started.
        self.startup_seconds = 0.0
        self.location_error = ""  # the code location's last load error, while it starts
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Rehearsal:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    # ------------------------------------------------------------------------------------

    def _start(self) -> None:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        url = self._exit.enter_context(aws.running_moto(self.region))
        self.clients = clients = Clients(url, self.region)
        vpc, subnets = self._network()
        exports = self._moto_stacks(subnets)
        self.postgres = self._exit.enter_context(running_cluster(user="rehearsal"))
        templates = {
            name: parse((self.infra / "cloudformation" / f"{name}.yaml").read_text())
            for name in ("mlflow-server", "dagster")
        }
        ports = {port: free_port() for port in container_ports(*templates.values())}
        network = {
            "VpcId": vpc,
            "SubnetIds": ",".join(subnets),
            "LoadBalancerSubnetIds": ",".join(subnets),
            "AllowedCidr": "10.0.0.0/16",
        }
        self._push_images()
        mlflow = self._stack(
            "penguins-mlflow", templates["mlflow-server"], network, exports, vpc, ports
        )
        exports.update(self._exports(mlflow))
        dagster = self._stack(
            "penguins-dagster", templates["dagster"], {**network, "Image": self.image},
            exports, vpc, ports,
        )  # fmt: skip
        self.ports = ports
        world = ContainerWorld(
            app=PROJECT_ROOT,
            dockerfile=self.infra / "image" / "Dockerfile",
            instance_files=[
                self.infra / "dagster" / "dagster.yaml",
                self.infra / "dagster" / "workspace.yaml",
            ],
            start_service=self.infra / "image" / "start-service.sh",
            region=self.region,
            aws_url=url,
            host_names={name: "127.0.0.1" for name in private_names(dagster)},
            ports=ports,
            edit_home=self._remap_workspace_port,
            # A run's task mostly waits on its steps: the cores, plus one.
            capacity=len(os.sched_getaffinity(0)) + 1,
        )
        self.agent = Agent(clients("ecs"), clients("secretsmanager"), world, self.root)
        self._exit.enter_context(self.agent.running())
        for stack in (mlflow, dagster) if self.tracking_server else (dagster,):
            self._start_services(stack, subnets)
        self._wait_for_services()
        self.startup_seconds = time.monotonic() - started

    def _network(self) -> tuple[str, list[str]]:
        ec2 = self.clients("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # moto names a task's network interface only in a VPC with DNS hostnames.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{index}.0/24", AvailabilityZone=f"{self.region}{zone}"
            )["Subnet"]["SubnetId"]
            for index, zone in enumerate("ab")
        ]
        return vpc, subnets

    def _moto_stacks(self, subnets: list[str]) -> dict[str, str]:
        """storage.yaml and platform-access.yaml, created by moto's CloudFormation."""
        import logging
        import warnings

        # moto warns of each resource its CloudFormation skips (a bucket policy, secrets):
        # none that the rehearsal reads.
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Tried to parse", module="moto")
        cloudformation = self.clients("cloudformation")
        for stack, name in (
            ("penguins-storage", "storage"),
            ("penguins-access", "platform-access"),
        ):
            cloudformation.create_stack(
                StackName=stack,
                TemplateBody=(self.infra / "cloudformation" / f"{name}.yaml").read_text(),
                Capabilities=["CAPABILITY_NAMED_IAM"],
            )
            status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            if status != "CREATE_COMPLETE":
                raise RehearsalError(f"stack {stack} ({name}.yaml): {status}")
        exports = cloudformation.list_exports()["Exports"]
        return {export["Name"]: export["Value"] for export in exports}

    def _push_images(self) -> None:
        """The images the steps push: the project's, and MLflow's serving image for SageMaker."""
        import mlflow.version

        ecr = self.clients("ecr")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {},
                "layers": [],
            }
        )
        for repository, tag in ((PREFIX, "rehearsal"), ("mlflow-pyfunc", mlflow.version.VERSION)):
            ecr.create_repository(repositoryName=repository)
            ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)

    def _stack(
        self, name: str, template: dict, parameters: dict[str, str], exports: dict[str, str],
        vpc: str, ports: Mapping[int, int],
    ) -> Stack:  # fmt: skip
        declared = template.get("Parameters", {})
        given = {key: value for key, value in parameters.items() if key in declared}
        stack = Stack(template, given, self.region, aws.ACCOUNT, name, exports=exports)
        Provisioner(self.clients, self.postgres, vpc, ports).attach(stack)
        self.stacks[name] = stack
        return stack

    def _exports(self, stack: Stack) -> dict[str, str]:
        exports = {}
        for output in stack.template.get("Outputs", {}).values():
            if "Export" in output:
                exports[stack.resolve(output["Export"]["Name"])] = str(
                    stack.resolve(output["Value"])
                )
        return exports

    def _start_services(self, stack: Stack, subnets: list[str]) -> None:
        """What ECS's service scheduler does: run each service's desired tasks."""
        ecs = self.clients("ecs")
        for resource in stack.template["Resources"].values():
            if resource["Type"] != "AWS::ECS::Service":
                continue
            properties = LazyProperties(stack, resource["Properties"])
            network = camel(properties["NetworkConfiguration"])
            ecs.run_task(
                cluster=properties["Cluster"],
                taskDefinition=properties["TaskDefinition"],
                count=int(properties.get("DesiredCount", 1)),
                launchType=properties.get("LaunchType", "FARGATE"),
                networkConfiguration=network,
                startedBy=f"ecs-svc/{properties['ServiceName']}"[:36],
            )

    def _remap_workspace_port(self, home: Path) -> None:
        """The workspace names the code location's container port; here it is a port of
        127.0.0.1 (the tasks share one address)."""
        path = home / "workspace.yaml"
        if not path.exists():
            return
        workspace = yaml.safe_load(path.read_text())
        for entry in workspace.get("load_from", []):
            server = entry.get("grpc_server")
            if server and int(server.get("port", 0)) in self.ports:
                server["port"] = self.ports[int(server["port"])]
        path.write_text(yaml.safe_dump(workspace, sort_keys=False))

    # ------------------------------------------------------------------------------------

    @property
    def webserver_port(self) -> int:
        return self.ports[3000]

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    def failure(self) -> str | None:
        assert self.agent is not None
        return self.agent.failures[0] if self.agent.failures else None

    def _service_failure(self) -> str | None:
        """A service whose task ended: ECS's circuit breaker would fail the deployment."""
        assert self.agent is not None
        for task in self.agent.tasks.values():
            if task.service and task.exit_code is not None:
                return (
                    f"service task {task.family} exited with {task.exit_code}:\n"
                    f"{self.agent.tail(task)}"
                )
        return None

    def _wait_for_services(self, timeout: float = 240.0) -> None:
        if self.tracking_server:
            wait_until(
                lambda: _answers(f"http://127.0.0.1:{self.ports[5000]}/health"),
                timeout, "the MLflow server", self._service_failure,
            )  # fmt: skip
        wait_until(
            lambda: _answers(f"{self.webserver_url}/server_info"),
            timeout, "the Dagster webserver", self._service_failure,
        )  # fmt: skip
        try:
            wait_until(self._location_loaded, timeout, "the code location", self._service_failure)
        except RehearsalError as error:
            if self.location_error:
                raise RehearsalError(
                    f"{error}; its last load error: {self.location_error}"
                ) from None
            raise

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.webserver_url}/graphql", data=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.loads(reply.read())
        if answer.get("errors"):
            raise RehearsalError(f"GraphQL: {answer['errors']}")
        return answer["data"]

    def _location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        for entry in data["workspaceOrError"]["locationEntries"]:
            if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                if loaded and loaded["__typename"] == "PythonError":
                    # The webserver can start before the code location answers, and then
                    # keeps the error until someone reloads it: do what the UI's Reload does.
                    self.location_error = loaded["message"].splitlines()[0]
                    self.graphql(
                        "mutation($name: String!) { reloadRepositoryLocation("
                        "repositoryLocationName: $name) { __typename } }",
                        {"name": LOCATION},
                    )
                    return False
                return True
        return False

    # ------------------------------------------------------------------------------------

    def launch(self, job: str, run_config: Mapping[str, Any] | None = None) -> str:
        """Launch `job` as a user would from the UI: through the webserver's GraphQL API, with
        dagster-graphql's own client."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.webserver_port)
        return client.submit_job_execution(
            job, repository_location_name=LOCATION, run_config=dict(run_config or {})
        )

    def wait_for_run(self, run_id: str, timeout: float = 600.0) -> str:
        """The run's final status; raises with the run's failure and its tasks' logs."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.webserver_port)

        def finished() -> str | None:
            status = client.get_run_status(run_id).value
            return status if status in TERMINAL else None

        status = wait_until(finished, timeout, f"run {run_id}", lambda: None)
        if status != "SUCCESS":
            raise RehearsalError(f"run {run_id} ended {status}: {self.run_failure(run_id)}")
        return status

    def run_failure(self, run_id: str) -> str:
        """What went wrong in a run: its failure events with their errors' causes, then the
        logs of its tasks that failed."""
        error = "error { message causes { message } }"
        data = self.graphql(
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
            f"__typename ... on ExecutionStepFailureEvent {{ message {error} }} "
            f"... on RunFailureEvent {{ message {error} }} "
            f"... on EngineEvent {{ message {error} }} }} }} }} }}",
            {"id": run_id},
        )
        messages = []
        for event in data["logsForRun"].get("events", []):
            found = event.get("error")
            if not found and "Failure" not in event["__typename"]:
                continue
            parts = [event.get("message") or ""]
            if found:
                parts += [found["message"].strip()]
                parts += [cause["message"].strip() for cause in found.get("causes") or []]
            messages.append("\n".join(part for part in parts if part))
        assert self.agent is not None
        logs = [
            f"{task.family} ({task.exit_code}): {self.agent.tail(task, 1500)}"
            for task in self.agent.tasks.values()
            if run_id in " ".join(task.command) and task.exit_code not in (None, 0)
        ]
        return "\n".join(messages[-3:] + logs[-2:]) or "no failure events"

    def materialization(self, run_id: str, asset: str) -> dict[str, Any]:
        """The numbers and texts of `asset`'s materialization in the run, by label."""
        data = self.graphql(
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
            "__typename ... on MaterializationEvent { assetKey { path } metadataEntries { label "
            "... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } "
            "... on TextMetadataEntry { text } } } } } } }",
            {"id": run_id},
        )
        for event in data["logsForRun"].get("events", []):
            if event["__typename"] == "MaterializationEvent" and event["assetKey"]["path"] == [
                asset
            ]:
                return {
                    entry["label"]: next(
                        (entry[k] for k in ("intValue", "floatValue", "text") if k in entry), None
                    )
                    for entry in event["metadataEntries"]
                }
        raise RehearsalError(f"run {run_id} did not materialize {asset}")

    def runs(self, job: str) -> list[dict[str, Any]]:
        data = self.graphql(
            "query($job: String!) { runsOrError(filter: {pipelineName: $job}) { ... on Runs { "
            "results { runId status tags { key value } } } } }",
            {"job": job},
        )
        return data["runsOrError"]["results"]

    def sagemaker_endpoint(self, name: str = PREFIX) -> dict[str, Any] | None:
        sagemaker = self.clients("sagemaker")
        try:
            return sagemaker.describe_endpoint(EndpointName=name)
        except sagemaker.exceptions.ClientError:
            return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def edit_templates(folder: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of `infra/` in `folder`, changed by `edit` (a test puts an old line back)."""
    import shutil

    copy = folder / "infra"
    shutil.copytree(INFRA, copy)
    edit(copy)
    return copy
