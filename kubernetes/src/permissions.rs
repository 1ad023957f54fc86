//! Every permission t2 uses, in one table: what people who submit need (Role `t2-submitter`
//! in deploy/rbac.yaml, plus Role `t2-direct-delivery` where packages are streamed into pods),
//! and what a job master needs (its job's own Role, made at submit from [`JOBMASTER`] with
//! `resourceNames` — see `manifests::access` — and the optional ClusterRole `t2-node-reader`
//! in deploy/rbac-nodes.yaml). `t2 doctor kubernetes` checks the submitter's lists with
//! SelfSubjectAccessReviews; the tests check that deploy/ grants exactly these.

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The verb.
    pub verb: &'static str,
    /// The API group (`""` for core).
    pub group: &'static str,
    /// The resource (plural).
    pub resource: &'static str,
    /// The subresource, if any.
    pub subresource: Option<&'static str>,
    /// Only this object, if restricted.
    pub name: Option<&'static str>,
    /// Only this object of the job, if restricted (a job master's permissions).
    pub object: Option<JobObject>,
    /// What needs it.
    pub used_by: &'static str,
}

/// An object of a job a job master's permission is limited to (`resourceNames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobObject {
    /// The job's root ConfigMap.
    Root,
    /// The job's worker StatefulSet.
    Workers,
}

impl Permission {
    /// `resource[/subresource][.group]` as RBAC and kubectl write it.
    pub fn resource_name(&self) -> String {
        let r = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_string(),
        };
        if self.group.is_empty() {
            r
        } else {
            format!("{r}.{}", self.group)
        }
    }
}

const fn p(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    used_by: &'static str,
) -> Permission {
    Permission {
        verb,
        group,
        resource,
        subresource,
        name: None,
        object: None,
        used_by,
    }
}

/// A job master's permission on object `object` of its own job.
const fn jp(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    object: JobObject,
    used_by: &'static str,
) -> Permission {
    Permission {
        verb,
        group,
        resource,
        subresource,
        name: None,
        object: Some(object),
        used_by,
    }
}

/// What `t2 submit/kill/list/status/logs/scale/gc/doctor` need in the namespace.
pub const SUBMITTER: &[Permission] = &[
    p("create", "", "configmaps", None, "submit (the job's root)"),
    p("get", "", "configmaps", None, "status, kill, scale"),
    p("list", "", "configmaps", None, "list, gc, following a job"),
    p(
        "watch",
        "",
        "configmaps",
        None,
        "following a job, scale (the job master's answer)",
    ),
    p(
        "patch",
        "",
        "configmaps",
        None,
        "kill, scale (the request to the job master)",
    ),
    p(
        "delete",
        "",
        "configmaps",
        None,
        "kill, gc, rollback of a failed submit",
    ),
    p("create", "", "secrets", None, "submit (the job token)"),
    p("delete", "", "secrets", None, "gc"),
    p(
        "create",
        "",
        "serviceaccounts",
        None,
        "submit (the job master's own ServiceAccount)",
    ),
    p(
        "create",
        "rbac.authorization.k8s.io",
        "roles",
        None,
        "submit (the job master's Role, limited to the job)",
    ),
    p(
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        None,
        "submit (binding that Role to the job's ServiceAccount)",
    ),
    p(
        "get",
        "apps",
        "statefulsets",
        Some("scale"),
        "submit (RBAC lets a Role grant only what its maker holds)",
    ),
    p(
        "patch",
        "apps",
        "statefulsets",
        Some("scale"),
        "submit (RBAC lets a Role grant only what its maker holds)",
    ),
    p("create", "", "services", None, "submit"),
    p(
        "list",
        "",
        "services",
        None,
        "submit (finding the uploader), kill, gc",
    ),
    p("delete", "", "services", None, "gc"),
    p(
        "create",
        "",
        "persistentvolumeclaims",
        None,
        "submit (shared storage)",
    ),
    p(
        "get",
        "",
        "persistentvolumeclaims",
        None,
        "submit and scale (the existing claims of kubernetes.volumes)",
    ),
    p("list", "", "persistentvolumeclaims", None, "kill, gc"),
    p("delete", "", "persistentvolumeclaims", None, "gc"),
    p("create", "apps", "statefulsets", None, "submit"),
    p("list", "apps", "statefulsets", None, "kill, gc"),
    p("delete", "apps", "statefulsets", None, "gc"),
    p(
        "list",
        "",
        "pods",
        None,
        "submit (waiting for pods), status, logs, kill",
    ),
    p("watch", "", "pods", None, "submit (waiting for pods)"),
    p("get", "", "pods", Some("log"), "logs"),
    p("list", "", "events", None, "describe"),
    p(
        "get",
        "",
        "services",
        Some("proxy"),
        "submit (asking the uploader for the package)",
    ),
    p(
        "update",
        "",
        "services",
        Some("proxy"),
        "submit (uploading the package)",
    ),
    // Issue 18 (k18b).
    p(
        "update",
        "",
        "configmaps",
        Some("finalizers"),
        "submit (owner references that block the root's deletion, where OwnerReferencesPermissionEnforcement is on)",
    ),
    p(
        "create",
        "networking.k8s.io",
        "networkpolicies",
        None,
        "submit (the job's NetworkPolicies)",
    ),
    p("list", "networking.k8s.io", "networkpolicies", None, "kill, gc"),
    p("delete", "networking.k8s.io", "networkpolicies", None, "gc"),
    p("get", "", "pods", None, "submit (RBAC lets a Role grant only what its maker holds)"),
    // Issue 18 (gang18): Volcano's PodGroup (kubernetes.gang: volcano).
    p(
        "create",
        "scheduling.volcano.sh",
        "podgroups",
        None,
        "submit (the job's PodGroup, kubernetes.gang: volcano)",
    ),
    p(
        "get",
        "scheduling.volcano.sh",
        "podgroups",
        None,
        "submit (why a gang job is queued; RBAC lets a Role grant only what its maker holds)",
    ),
    p(
        "patch",
        "scheduling.volcano.sh",
        "podgroups",
        None,
        "submit (RBAC lets a Role grant only what its maker holds)",
    ),
];

/// What direct package delivery needs besides [`SUBMITTER`] (Role `t2-direct-delivery`):
/// not needed where an uploader delivers.
/// Both verbs: the API server authorizes an exec over WebSocket (what t2 speaks) as `get`
/// (checked on the real control plane, v1.37), one over SPDY or a POST as `create`.
pub const DIRECT_DELIVERY: &[Permission] = &[
    p(
        "create",
        "",
        "pods",
        Some("exec"),
        "submit (direct package delivery: streaming it into the job's pods)",
    ),
    p(
        "get",
        "",
        "pods",
        Some("exec"),
        "submit (direct package delivery over WebSocket)",
    ),
];

/// What a job master does: its job's Role (`manifests::access`), every rule limited to one
/// object of its own job.
pub const JOBMASTER: &[Permission] = &[
    jp(
        "get",
        "",
        "configmaps",
        None,
        JobObject::Root,
        "reading its job's root",
    ),
    jp(
        "list",
        "",
        "configmaps",
        None,
        JobObject::Root,
        "scale requests (its job's root, by name)",
    ),
    jp(
        "watch",
        "",
        "configmaps",
        None,
        JobObject::Root,
        "scale requests (its job's root, by name)",
    ),
    jp(
        "patch",
        "",
        "configmaps",
        None,
        JobObject::Root,
        "recording state, restart counts and answers to scale requests",
    ),
    jp(
        "delete",
        "",
        "configmaps",
        None,
        JobObject::Root,
        "ending the job (garbage collection removes the rest)",
    ),
    jp(
        "get",
        "apps",
        "statefulsets",
        Some("scale"),
        JobObject::Workers,
        "scaling workers",
    ),
    // Issue 18 (k18b): a worker's pod names change with scaling, so no resourceNames.
    p(
        "get",
        "",
        "pods",
        None,
        "telling a disrupted (evicted, preempted) worker from a failed one",
    ),
    p(
        "list",
        "",
        "pods",
        None,
        "watching its worker pods for disruptions",
    ),
    p(
        "watch",
        "",
        "pods",
        None,
        "watching its worker pods for disruptions",
    ),
    jp(
        "patch",
        "apps",
        "statefulsets",
        Some("scale"),
        JobObject::Workers,
        "scaling workers",
    ),
];

/// What a job master of a Volcano gang job (`kubernetes.gang: volcano`) does besides
/// [`JOBMASTER`]: keep its PodGroup's `minMember` equal to the job's pods on `t2 scale`. Its
/// Role limits both to the job's own PodGroup (`resourceNames: [<id>]`; see
/// `manifests::gang`).
pub const JOBMASTER_VOLCANO: &[Permission] = &[
    p(
        "get",
        "scheduling.volcano.sh",
        "podgroups",
        None,
        "its job's PodGroup",
    ),
    p(
        "patch",
        "scheduling.volcano.sh",
        "podgroups",
        None,
        "its job's PodGroup's minMember on scale",
    ),
];

/// What a job master may do cluster-wide when deploy/rbac-nodes.yaml is applied: read node
/// labels for its workers' rack and datacenter.
pub const JOBMASTER_NODES: &[Permission] = &[p(
    "list",
    "",
    "nodes",
    None,
    "workers' rack and datacenter (node labels)",
)];
