//! Every permission t2 uses, in one table: what people who submit need (Role `t2-submitter`
//! in deploy/rbac.yaml) and what job masters need (Role `t2-jobmaster`, and the optional
//! ClusterRole `t2-node-reader` in deploy/rbac-nodes.yaml). `t2 doctor kubernetes` checks the
//! first list with SelfSubjectAccessReviews; the tests check that deploy/ grants exactly the
//! job master's.

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
    /// What needs it.
    pub used_by: &'static str,
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
    p("list", "", "secrets", None, "kill, gc"),
    p("delete", "", "secrets", None, "gc"),
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
    p(
        "create",
        "",
        "pods",
        Some("exec"),
        "submit (direct package delivery)",
    ),
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
    p(
        "get",
        "",
        "serviceaccounts",
        None,
        "doctor (is t2-jobmaster there?)",
    ),
];

/// What a job master does (its ServiceAccount's Role).
pub const JOBMASTER: &[Permission] = &[
    p("get", "", "configmaps", None, "reading its job's root"),
    p(
        "list",
        "",
        "configmaps",
        None,
        "scale requests (its job's root, by name)",
    ),
    p(
        "watch",
        "",
        "configmaps",
        None,
        "scale requests (its job's root, by name)",
    ),
    p(
        "patch",
        "",
        "configmaps",
        None,
        "recording state, restart counts and answers to scale requests",
    ),
    p(
        "delete",
        "",
        "configmaps",
        None,
        "ending the job (garbage collection removes the rest)",
    ),
    p(
        "get",
        "apps",
        "statefulsets",
        Some("scale"),
        "scaling workers",
    ),
    p(
        "patch",
        "apps",
        "statefulsets",
        Some("scale"),
        "scaling workers",
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
