"""deploy/'s Kubernetes manifests and compose file: every YAML file parses; every object has
what Kubernetes requires of its kind; names that refer to each other (selectors, the
ScaledObject's target, secret and config map keys, the claim) resolve; every variable the
worker is given is one README.md documents; grace periods exceed the drain timeout; the
memory limit covers the peak RSS bench/ measured.  Usage: test_manifests.py [test_name]"""
import os
import re

import deployfiles as df

KINDS_REQUIRED = {
    # kind: fields (dotted) Kubernetes rejects the object without
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "Job": ["spec.template.spec.containers", "spec.template.spec.restartPolicy"],
    "ConfigMap": [],
    "Secret": [],
    "PersistentVolumeClaim": ["spec.accessModes", "spec.resources.requests.storage"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
    "ScaledObject": ["spec.scaleTargetRef.name", "spec.triggers"],
    "TriggerAuthentication": [],
}


def get(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def pod_specs():
    """(name, pod spec) of the Deployment and the Job."""
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"])
            for o in df.objects_of("Deployment") + df.objects_of("Job")]


def env_of(container):
    """Variable names a container gets: env entries and the keys of envFrom config maps/secrets."""
    names = [e["name"] for e in container.get("env", [])]
    for src in container.get("envFrom", []):
        ref = src.get("configMapRef") or src.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in src else "Secret"
        found = [o for o in df.objects_of(kind) if o["metadata"]["name"] == ref["name"]]
        assert found, f"envFrom names {kind} {ref['name']}, which deploy/k8s does not define"
        names += list(found[0].get("data") or found[0].get("stringData") or {})
    return names


def worker_container():
    containers = df.the("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "worker")


def worker_env_value(name):
    c = worker_container()
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value")
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cm = [o for o in df.objects_of("ConfigMap") if o["metadata"]["name"] == src["configMapRef"]["name"]]
            if cm and name in cm[0].get("data", {}):
                return cm[0]["data"][name]
    return None


def test_every_yaml_file_parses():
    files = df.yaml_files()
    assert any(f.endswith("compose.yaml") for f in files), "deploy/compose.yaml is missing"
    assert sum(f.startswith("deploy/k8s/") for f in files) >= 6, f"too few manifests: {files}"
    for rel in files:
        docs = df.load_all(rel)
        assert docs, f"{rel}: no YAML document"
        for d in docs:
            assert isinstance(d, dict), f"{rel}: a document is not a mapping"


def test_every_kubernetes_object_has_identity_and_required_fields():
    objs = df.k8s_objects()
    assert objs
    for rel, o in objs:
        for key in ("apiVersion", "kind"):
            assert o.get(key), f"{rel}: {key} missing"
        if o["kind"] == "Kustomization":
            continue
        assert get(o, "metadata.name"), f"{rel}: {o['kind']} without metadata.name"
        assert get(o, "metadata.namespace") is None, \
            f"{rel}: {o['kind']} {o['metadata']['name']} sets a namespace; the manifests are namespace-agnostic"
        assert o["kind"] in KINDS_REQUIRED, f"{rel}: unexpected kind {o['kind']}"
        for field in KINDS_REQUIRED[o["kind"]]:
            assert get(o, field) not in (None, [], {}), f"{rel}: {o['kind']} lacks {field}"
    kinds = {o["kind"] for _, o in objs}
    for kind in ("Deployment", "Job", "ScaledObject", "PodDisruptionBudget", "ConfigMap", "Secret"):
        assert kind in kinds, f"no {kind} in deploy/k8s"


def test_deployment_selector_matches_its_pod_labels_and_containers_are_complete():
    for d in df.objects_of("Deployment"):
        sel = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        for k, v in sel.items():
            assert labels.get(k) == v, f"Deployment {d['metadata']['name']}: selector {k}={v} not in pod labels {labels}"
    for name, spec in pod_specs():
        for c in spec["containers"]:
            assert c.get("name") and c.get("image"), f"{name}: a container lacks name or image"


def test_job_restart_policy_is_never_or_on_failure():
    jobs = df.objects_of("Job")
    assert jobs
    for j in jobs:
        policy = j["spec"]["template"]["spec"].get("restartPolicy")
        assert policy in ("Never", "OnFailure"), f"Job {j['metadata']['name']}: restartPolicy {policy}"


def test_migration_job_runs_migrate_with_the_worker_image():
    job = df.the("Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c.get("args") == ["migrate"], f"the Job runs {c.get('args')}, not `projection-worker migrate`"
    assert c["image"] == worker_container()["image"], "the Job and the Deployment use different images"
    assert "DATABASE_URL" in env_of(c)


def test_scaledobject_targets_the_deployment_on_the_queue_length():
    so = df.the("ScaledObject")
    deployments = {d["metadata"]["name"] for d in df.objects_of("Deployment")}
    assert so["spec"]["scaleTargetRef"]["name"] in deployments, "scaleTargetRef names no Deployment"
    assert so["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    (trig,) = so["spec"]["triggers"]
    assert trig["type"] == "rabbitmq"
    meta = trig["metadata"]
    assert meta["mode"] == "QueueLength"
    assert meta["queueName"] == (worker_env_value("PROJECTION_QUEUE") or "celery")
    concurrency = int(worker_env_value("PW_CONCURRENCY"))
    assert int(meta["value"]) == concurrency * 1, f"value {meta['value']} != PW_CONCURRENCY x 1 = {concurrency}"
    auth = trig["authenticationRef"]["name"]
    ta = [o for o in df.objects_of("TriggerAuthentication") if o["metadata"]["name"] == auth]
    assert ta, f"authenticationRef {auth} is not defined"
    for ref in ta[0]["spec"]["secretTargetRef"]:
        assert_secret_key(ref["name"], ref["key"], f"TriggerAuthentication {auth}")


def test_scale_down_waits_longer_than_a_drain():
    """KEDA counts ready messages only, so scale-down may pick a busy pod: the windows must
    exceed the pod's grace period (docs/OPERATIONS.md, "Scale")."""
    so = df.the("ScaledObject")
    grace = df.the("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    window = get(so, "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds")
    assert window is not None and window >= grace, f"scale-down stabilization {window} < grace {grace}"
    assert so["spec"].get("cooldownPeriod", 300) >= grace


def test_pdb_selects_the_deployment_pods():
    pdb = df.the("PodDisruptionBudget")
    labels = df.the("Deployment")["spec"]["template"]["metadata"]["labels"]
    sel = pdb["spec"]["selector"]["matchLabels"]
    assert all(labels.get(k) == v for k, v in sel.items()), f"PDB selector {sel} does not match pods {labels}"
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]), \
        "a PDB needs exactly one of minAvailable / maxUnavailable"


def assert_secret_key(name, key, where):
    found = [o for o in df.objects_of("Secret") if o["metadata"]["name"] == name]
    assert found, f"{where}: Secret {name} is not defined"
    keys = set(found[0].get("stringData") or {}) | set(found[0].get("data") or {})
    assert key in keys, f"{where}: Secret {name} has no key {key}"


def test_secret_and_config_references_resolve():
    for name, spec in pod_specs():
        for c in spec["containers"]:
            env_of(c)  # asserts envFrom sources exist
            for e in c.get("env", []):
                ref = get(e, "valueFrom.secretKeyRef")
                if ref:
                    assert_secret_key(ref["name"], ref["key"], f"{name}/{c['name']} env {e['name']}")


def test_worker_environment_names_are_in_the_readme_table():
    documented = df.readme_variables()
    for name, spec in pod_specs():
        for c in spec["containers"]:
            unknown = sorted(set(env_of(c)) - documented)
            assert not unknown, f"{name}/{c['name']}: {unknown} not in README.md's configuration table"
    compose = df.load_all("deploy/compose.yaml")[0]
    for svc in ("worker", "migrate"):
        unknown = sorted(set(compose["services"][svc].get("environment", {})) - documented)
        assert not unknown, f"compose {svc}: {unknown} not in README.md's configuration table"
    example = df.read("deploy", "projection-worker.env.example")
    names = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.M)
    assert names and not sorted(set(names) - documented), f"env example names {names} not all documented"


def test_grace_period_exceeds_the_shutdown_timeout():
    """The supervisor's kill comes after the warm drain and the soft window, so the worker
    itself requeues what still runs (a cold stop) before it is killed."""
    spec = df.the("Deployment")["spec"]["template"]["spec"]
    timeout = worker_env_value("PW_SHUTDOWN_TIMEOUT")
    assert timeout is not None, "the Deployment does not set PW_SHUTDOWN_TIMEOUT"
    drain = float(timeout) + float(worker_env_value("PW_SOFT_SHUTDOWN_TIMEOUT") or 0)
    assert spec["terminationGracePeriodSeconds"] > drain, \
        f"terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} <= drain {drain}"
    worker = df.load_all("deploy/compose.yaml")[0]["services"]["worker"]
    grace = int(re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).group(1))
    env = worker["environment"]
    assert grace > float(env["PW_SHUTDOWN_TIMEOUT"]) + float(env.get("PW_SOFT_SHUTDOWN_TIMEOUT", 0))


def test_probes_use_healthz_and_readyz_on_the_metrics_port():
    c = worker_container()
    address = worker_env_value("PW_METRICS_ADDRESS")
    assert address, "the Deployment does not set PW_METRICS_ADDRESS, so nothing serves the probes"
    port = int(address.rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get_ = get(c, f"{probe}.httpGet")
        assert get_ and get_["path"] == path, f"{probe} is not an httpGet of {path}"
        target = ports.get(get_["port"], get_["port"])
        assert target == port, f"{probe} probes port {get_['port']}, the worker serves {port}"


def test_compose_worker_healthcheck_reads_the_images_heartbeat_file():
    worker = df.load_all("deploy/compose.yaml")[0]["services"]["worker"]
    test = " ".join(worker["healthcheck"]["test"])
    path = re.search(r"^ENV PW_HEARTBEAT_FILE=(\S+)", df.read("deploy", "Dockerfile"), re.M).group(1)
    assert path in test and "-newermt" in test, test
    assert path in df.read("deploy", "Dockerfile").split("HEALTHCHECK", 1)[1]


def test_pods_run_non_root_with_a_read_only_root_filesystem():
    uid = int(re.search(r"^USER (\d+)", df.read("deploy", "Dockerfile"), re.M).group(1))
    for name, spec in pod_specs():
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot not set"
        assert psc.get("runAsUser") == uid, f"{name}: runAsUser {psc.get('runAsUser')} != the image's USER {uid}"
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: root filesystem writable"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: privilege escalation allowed"
            assert "ALL" in get(sc, "capabilities.drop") or [], f"{name}/{c['name']}: capabilities not dropped"


def test_data_dir_is_the_mounted_claim():
    spec = df.the("Deployment")["spec"]["template"]["spec"]
    data_dir = worker_env_value("DATA_DIR")
    mounts = {m["mountPath"]: m["name"] for m in worker_container().get("volumeMounts", [])}
    assert data_dir in mounts, f"DATA_DIR {data_dir} is not a mount ({sorted(mounts)})"
    vol = next(v for v in spec["volumes"] if v["name"] == mounts[data_dir])
    claim = get(vol, "persistentVolumeClaim.claimName")
    assert claim in {p["metadata"]["name"] for p in df.objects_of("PersistentVolumeClaim")}, f"claim {claim} undefined"
    pvc = next(p for p in df.objects_of("PersistentVolumeClaim") if p["metadata"]["name"] == claim)
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], "replicas and the API share DATA_DIR: ReadWriteMany"


def test_memory_limit_covers_the_measured_peak_with_headroom():
    peak = df.measured_peak_mib()
    res = worker_container()["resources"]
    slots = int(worker_env_value("PW_CONCURRENCY"))
    assert df.mib(res["requests"]["memory"]) >= peak * slots, f"memory request below the measured peak {peak:.0f} MiB"
    assert df.mib(res["limits"]["memory"]) >= 1.5 * peak * slots, \
        f"memory limit {res['limits']['memory']} leaves less than 50% over the measured peak {peak:.0f} MiB"
    compose = df.load_all("deploy/compose.yaml")[0]["services"]["worker"]
    assert df.mib(compose["mem_limit"].replace("m", "Mi")) >= 1.5 * peak


def test_kustomization_lists_every_manifest():
    k = df.the("Kustomization")
    files = sorted(f for f in os.listdir(df.K8S) if f.endswith(".yaml") and f != "kustomization.yaml")
    assert sorted(k["resources"]) == files, f"kustomization resources {k['resources']} != files {files}"


def test_compose_worker_waits_for_healthy_services_and_the_migration():
    c = df.load_all("deploy/compose.yaml")[0]["services"]
    deps = c["worker"]["depends_on"]
    for svc in ("rabbitmq", "postgres"):
        assert deps[svc]["condition"] == "service_healthy", f"worker does not wait for a healthy {svc}"
        assert c[svc].get("healthcheck"), f"{svc} has no healthcheck, so service_healthy never holds"
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert c["migrate"]["command"] == ["migrate"]
    assert c["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounts = [v.split(":") for v in c["worker"]["volumes"]]
    assert [c["worker"]["environment"]["DATA_DIR"]] == [m[1] for m in mounts if m[0] == "projection-data"]
    assert "projection-worker.env" in c["worker"]["env_file"], "QDRANT_URL / QDRANT_API_KEY come from the env file"


if __name__ == "__main__":
    df.main(globals())
