//! ACL authorization as Kafka's StandardAuthorizer decides it (`authorizer.class.name`): the ACL
//! bindings CreateAcls adds, DescribeAcls lists and DeleteAcls removes, kept durably on a single
//! node in `fjord-acls.checkpoint` and in a metadata quorum as the metadata log's
//! AccessControlEntry records (the authorizer follows the applied image; [`decide_create`] and
//! [`decide_delete`] are the one decision both paths share), and the one question every request
//! handler asks: may this principal, from this host, perform this operation on this resource?
//!
//! Kafka's rules, in the order it applies them: a super user (`super.users`) may do everything;
//! else the ACLs whose pattern covers the resource (LITERAL by name, the LITERAL wildcard `*`,
//! PREFIXED by name prefix) are looked at for the principal (or `User:*`) and the client's host
//! (or `*`): a matching DENY refuses, whatever ALLOWs there are; else a matching ALLOW permits
//! (ALL permits every operation; an ALLOW of READ, WRITE, DELETE or ALTER also permits DESCRIBE,
//! of ALTER_CONFIGS also DESCRIBE_CONFIGS; a DENY refuses only its own operation, or every one
//! for ALL); else, when no ACL at all covers the resource, `allow.everyone.if.no.acl.found`
//! decides; else the request is refused. Knows nothing of requests or wire types beyond Kafka's
//! numeric codes of the enums.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use uuid::Uuid;

pub use crate::config::AuthorizerConfig;
use crate::metadata::records::AccessControlEntryRecord;
use crate::storage::checkpoint::write_atomic;
use crate::storage::io::std::StdIo;

const FILE: &str = "fjord-acls.checkpoint";
const VERSION: &str = "0";

/// The only name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name, principal name and host that match every one.
pub const WILDCARD: &str = "*";
/// The principal that matches every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Kafka's numeric codes of the ACL enums, as the wire carries them (AclOperation, ResourceType,
/// PatternType, AclPermissionType): 0 is UNKNOWN and 1 is ANY in each.
const ANY: i8 = 1;
const MATCH: i8 = 2;

/// Whether any of an ACL's or filter's enum codes is UNKNOWN (0, or no code Kafka knows): Kafka
/// refuses such a CreateAcls, DescribeAcls or DeleteAcls request while parsing it, closing the
/// connection, and Fjord does the same.
pub fn has_unknown_code(resource_type: i8, pattern: i8, operation: i8, permission: i8) -> bool {
    !(1..=7).contains(&resource_type) || !(1..=4).contains(&pattern) || !(1..=14).contains(&operation) || !(1..=3).contains(&permission)
}

/// Resource types an ACL may name (DELEGATION_TOKEN and USER are accepted and stored, never asked about).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    /// The operations an ACL of this resource type can grant (Kafka's supported operations):
    /// what the authorized-operations fields report, all of them without an authorizer.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }

    /// The authorized-operations bit field (bit = operation code) of every supported operation.
    pub fn all_operations(self) -> i32 {
        operations_field(self.operations().iter().copied())
    }

    pub fn from_code(c: i8) -> Option<ResourceType> {
        Some(match c {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    fn name(self) -> &'static str {
        ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"][self as usize]
    }
}

/// How an ACL's resource name matches: the name itself (or every name, for `*`), or every name
/// that starts with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn from_code(c: i8) -> Option<PatternType> {
        match c {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Kafka's ACL operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    const BY_CODE: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    pub fn from_code(c: i8) -> Option<Operation> {
        Operation::BY_CODE.get(usize::try_from(c).ok()?.checked_sub(2)?).copied()
    }

    pub fn code(self) -> i8 {
        self as i8 + 2
    }

    /// Whether an ALLOW of `self` permits `asked` (Kafka's implied operations).
    fn allow_implies(self, asked: Operation) -> bool {
        use Operation::*;
        self == All
            || self == asked
            || (asked == Describe && matches!(self, Read | Write | Delete | Alter))
            || (asked == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY of `self` refuses `asked`: only its own operation, or every one for ALL.
    fn deny_implies(self, asked: Operation) -> bool {
        self == Operation::All || self == asked
    }
}

/// Kafka's authorized-operations bit field: bit `code` set for each operation.
pub fn operations_field(ops: impl Iterator<Item = Operation>) -> i32 {
    ops.fold(0, |field, op| field | (1 << op.code()))
}

/// ALLOW or DENY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn from_code(c: i8) -> Option<Permission> {
        match c {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: who (principal, host) may or may not (permission) do what (operation) to which
/// resources (type, name, pattern).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding or a filter was refused, or a change not stored; `api::error_code::acl` picks the code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// Kafka's INVALID_REQUEST, in its words.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("cannot store the ACLs: {0}")]
    Storage(String),
    /// A CreateAcls adding more than [`BINDINGS_PER_CHANGE_MAX`] bindings.
    #[error("{0}")]
    TooManyToAdd(String),
    /// A DeleteAcls filter that would take the bindings removed past [`BINDINGS_PER_CHANGE_MAX`].
    #[error("{0}")]
    TooManyToRemove(String),
}

/// The most bindings one CreateAcls or DeleteAcls adds or removes: Kafka's controller bounds
/// the records of one operation (`MAX_RECORDS_PER_USER_OP`, 10,000) so one request never becomes
/// an unbounded metadata batch. A CreateAcls over it fails whole with POLICY_VIOLATION; in a
/// DeleteAcls the filter that would cross it fails (UNKNOWN_SERVER_ERROR, as Kafka answers), and so
/// does every later filter that matches anything, as in Kafka; a failed filter removes nothing
/// (Kafka 4.0 still removes what the failed filters had gathered, while reporting them failed).
pub const BINDINGS_PER_CHANGE_MAX: usize = 10_000;

impl AclBinding {
    /// A binding from the wire's codes, checked as Kafka's broker and controller check a new ACL.
    pub fn from_wire(resource_type: i8, name: &str, pattern: i8, principal: &str, host: &str, operation: i8, permission: i8) -> Result<AclBinding, AclError> {
        let invalid = |m: String| AclError::InvalidRequest(m);
        let resource_type = ResourceType::from_code(resource_type).ok_or_else(|| invalid(format!("Invalid resourceType {}", code_name(resource_type))))?;
        let pattern = PatternType::from_code(pattern).ok_or_else(|| invalid(format!("Invalid patternType {}", pattern_name(pattern))))?;
        let operation = Operation::from_code(operation).ok_or_else(|| invalid(format!("Invalid operation {}", code_name(operation))))?;
        let permission = Permission::from_code(permission).ok_or_else(|| invalid(format!("Invalid permissionType {}", code_name(permission))))?;
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(invalid(format!("The only valid name for the CLUSTER resource is {CLUSTER_NAME}")));
        }
        if name.is_empty() {
            return Err(invalid("Invalid empty resource name".into()));
        }
        if !principal.contains(':') {
            return Err(invalid(format!("Could not parse principal from `{principal}` (no colon is present separating the principal type from name)")));
        }
        Ok(AclBinding { resource_type, name: name.into(), pattern, principal: principal.into(), host: host.into(), operation, permission })
    }

    /// The binding a metadata record carries; `None` for codes no binding has (the controller
    /// writes only checked bindings, so only a newer node's record could be one).
    pub fn from_record(r: &AccessControlEntryRecord) -> Option<AclBinding> {
        AclBinding::from_wire(r.resource_type, &r.resource_name, r.pattern_type, &r.principal, &r.host, r.operation, r.permission_type).ok()
    }

    /// This binding as the metadata record of id `id`.
    pub fn to_record(&self, id: Uuid) -> AccessControlEntryRecord {
        AccessControlEntryRecord {
            id,
            resource_type: self.resource_type.code(),
            resource_name: self.name.clone(),
            pattern_type: self.pattern.code(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.code(),
            permission_type: self.permission.code(),
        }
    }

    /// Whether this ACL's pattern covers resource `name` of its type.
    fn covers(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.name),
        }
    }
}

fn code_name(c: i8) -> &'static str {
    match c {
        0 => "UNKNOWN",
        ANY => "ANY",
        _ => "UNKNOWN",
    }
}

fn pattern_name(c: i8) -> &'static str {
    match c {
        MATCH => "MATCH",
        c => code_name(c),
    }
}

/// A pattern filter's type: one pattern type, ANY of them (names compared as they are), or MATCH
/// (every ACL that would apply to the named resource: LITERAL by name, the wildcard, PREFIXED
/// by prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    Match,
    Only(PatternType),
}

/// DescribeAcls' and DeleteAcls' filter: `None` fields match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// A filter from the wire's codes; UNKNOWN in any field is refused, as Kafka refuses it.
    pub fn from_wire(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, AclError> {
        let unknown_pattern = || AclError::InvalidRequest("Unknown patternFilter.".into());
        let unknown_entry = || AclError::InvalidRequest("Unknown entryFilter.".into());
        let resource_type = match resource_type {
            ANY => None,
            c => Some(ResourceType::from_code(c).ok_or_else(unknown_pattern)?),
        };
        let pattern = match pattern {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            c => PatternFilter::Only(PatternType::from_code(c).ok_or_else(unknown_pattern)?),
        };
        let operation = match operation {
            ANY => None,
            c => Some(Operation::from_code(c).ok_or_else(unknown_entry)?),
        };
        let permission = match permission {
            ANY => None,
            c => Some(Permission::from_code(c).ok_or_else(unknown_entry)?),
        };
        Ok(AclFilter {
            resource_type,
            name: name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// Kafka's AclBindingFilter.matches.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let pattern_ok = match self.pattern {
            PatternFilter::Any | PatternFilter::Match => true,
            PatternFilter::Only(p) => p == acl.pattern,
        };
        let name_ok = match (&self.name, self.pattern) {
            (None, _) => true,
            (Some(n), PatternFilter::Match) => acl.covers(n),
            (Some(n), _) => *n == acl.name,
        };
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && pattern_ok
            && name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// The ACLs behind one lock; on a single node a change is stored before it is seen, in a
/// metadata quorum the set follows the applied image ([`Authorizer::follow`]) and nothing is
/// written here.
#[derive(Debug)]
pub struct Authorizer {
    /// The single node's checkpoint directory; `None` in a metadata quorum.
    dir: Option<PathBuf>,
    config: AuthorizerConfig,
    acls: RwLock<AclSet>,
}

/// ACL bindings, with an index by resource for the authorizer's question: a decision looks only
/// at the bindings that can cover the resource (its LITERAL name, the LITERAL `*`, and a PREFIXED
/// binding per prefix of the name), by hash lookups, never at every binding. With thousands of
/// ACLs a topic's check stays a few lookups (Kafka's StandardAuthorizerData keeps a sorted set
/// for the same reason). Built whole whenever the set changes, which is rare next to lookups.
#[derive(Debug, Default, Clone)]
pub struct AclSet {
    bindings: BTreeSet<AclBinding>,
    by_resource: HashMap<(ResourceType, PatternType), HashMap<String, Vec<AclBinding>>>,
}

impl AclSet {
    pub fn new(bindings: BTreeSet<AclBinding>) -> AclSet {
        let mut by_resource: HashMap<(ResourceType, PatternType), HashMap<String, Vec<AclBinding>>> = HashMap::new();
        for b in &bindings {
            by_resource.entry((b.resource_type, b.pattern)).or_default().entry(b.name.clone()).or_default().push(b.clone());
        }
        AclSet { bindings, by_resource }
    }

    /// Every binding, in the store's order.
    pub fn bindings(&self) -> &BTreeSet<AclBinding> {
        &self.bindings
    }

    /// The bindings whose pattern covers resource `name` of `resource_type` (see
    /// [`AclBinding::covers`]), found through the index.
    fn covering<'a>(&'a self, resource_type: ResourceType, name: &'a str) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let lookup = move |pattern: PatternType, key: &str| self.by_resource.get(&(resource_type, pattern)).and_then(|m| m.get(key)).into_iter().flatten();
        let wildcard = (name != WILDCARD).then_some(WILDCARD);
        let prefixes = name.char_indices().map(move |(i, c)| &name[..i + c.len_utf8()]);
        lookup(PatternType::Literal, name)
            .chain(wildcard.into_iter().flat_map(move |w| lookup(PatternType::Literal, w)))
            .chain(prefixes.flat_map(move |p| lookup(PatternType::Prefixed, p)))
    }
}

impl Authorizer {
    /// Loads the ACLs of `dir` (none when the file does not exist).
    pub fn load(dir: &Path, config: AuthorizerConfig) -> std::io::Result<Authorizer> {
        let path = dir.join(FILE);
        let acls = match std::fs::read_to_string(&path) {
            Ok(text) => decode(&text).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is corrupt", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        tracing::info!(acls = acls.len(), super_users = config.super_users.len(), "authorizer loaded");
        Ok(Authorizer { dir: Some(dir.to_path_buf()), config, acls: RwLock::new(AclSet::new(acls)) })
    }

    /// The authorizer of a node in a metadata quorum: no ACLs until the publisher brings the
    /// applied image's (before that the node serves no client, see `node::start`).
    pub fn following(config: AuthorizerConfig) -> Authorizer {
        tracing::info!(super_users = config.super_users.len(), "authorizer follows the metadata log's ACLs");
        Authorizer { dir: None, config, acls: RwLock::new(AclSet::default()) }
    }

    /// In a metadata quorum the ACLs are the metadata log's: the set follows the applied image.
    pub fn follow(&self, acls: BTreeSet<AclBinding>) {
        let acls = AclSet::new(acls);
        *self.acls.write().unwrap_or_else(|e| e.into_inner()) = acls;
    }

    /// Whether the binding is in the set (a forwarded change is answered once it is seen here).
    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).bindings.contains(binding)
    }

    /// May `principal`, connected from `host`, perform `operation` on resource `name` of type
    /// `resource_type`? (Kafka's StandardAuthorizer rules; see the module comment.)
    pub fn authorize(&self, principal: &str, host: IpAddr, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let acls = self.acls.read().unwrap_or_else(|e| e.into_inner());
        authorized(&acls, &self.config, principal, host, operation, resource_type, name)
    }

    /// Whether `principal` may perform `operation` on some resource of `resource_type` (Kafka's
    /// authorizeByResourceType, which InitProducerId asks for idempotent producers with WRITE
    /// on any topic): an ALLOW for the principal that no DENY of the principal cancels (a DENY
    /// LITERAL of the same name, a DENY PREFIXED of a prefix of its name, or a DENY of `*`).
    pub fn authorize_any(&self, principal: &str, host: IpAddr, operation: Operation, resource_type: ResourceType) -> bool {
        if self.config.super_users.contains(principal) {
            return true;
        }
        let host = host_string(host);
        let set = self.acls.read().unwrap_or_else(|e| e.into_inner());
        let acls = &set.bindings;
        let applies = |a: &&AclBinding| a.resource_type == resource_type && (a.principal == principal || a.principal == WILDCARD_PRINCIPAL) && (a.host == WILDCARD || a.host == host);
        let denies: Vec<&AclBinding> = acls.iter().filter(applies).filter(|a| a.permission == Permission::Deny && a.operation.deny_implies(operation)).collect();
        if denies.iter().any(|d| d.pattern == PatternType::Literal && d.name == WILDCARD) {
            return false;
        }
        let allowed = acls.iter().filter(applies).filter(|a| a.permission == Permission::Allow && a.operation.allow_implies(operation)).any(|a| {
            !denies.iter().any(|d| match (d.pattern, a.pattern) {
                (PatternType::Literal, PatternType::Literal) => d.name == a.name,
                (PatternType::Prefixed, _) => a.name.starts_with(&d.name),
                (PatternType::Literal, PatternType::Prefixed) => false,
            })
        });
        allowed || (self.config.allow_everyone_if_no_acl_found && !acls.iter().any(|a| a.resource_type == resource_type))
    }

    /// Adds bindings (CreateAcls, see [`decide_create`]) and stores them before they take effect.
    pub fn create(&self, bindings: Vec<Result<AclBinding, AclError>>) -> Vec<Result<(), AclError>> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let (added, results) = decide_create(&acls.bindings, bindings);
        let mut next = acls.bindings.clone();
        next.extend(added);
        let stored = self.store(&acls.bindings, &next);
        if stored.is_ok() {
            *acls = AclSet::new(next);
        }
        results.into_iter().map(|r| r.and(stored.clone())).collect()
    }

    /// The bindings a filter matches (DescribeAcls), in the store's order.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).bindings.iter().filter(|a| filter.matches(a)).cloned().collect()
    }

    /// Removes what each filter matches (DeleteAcls, see [`decide_delete`]) and stores the rest
    /// before the removal takes effect.
    pub fn delete(&self, filters: Vec<Result<AclFilter, AclError>>) -> Vec<Result<Vec<AclBinding>, AclError>> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let (gone, results) = decide_delete(&acls.bindings, &filters);
        let mut next = acls.bindings.clone();
        for a in &gone {
            next.remove(a);
        }
        if let Err(e) = self.store(&acls.bindings, &next) {
            return filters.into_iter().map(|f| f.and(Err(e.clone()))).collect();
        }
        *acls = AclSet::new(next);
        results
    }

    pub fn len(&self) -> usize {
        self.acls.read().unwrap_or_else(|e| e.into_inner()).bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn store(&self, now: &BTreeSet<AclBinding>, next: &BTreeSet<AclBinding>) -> Result<(), AclError> {
        if now == next {
            return Ok(());
        }
        // A quorum's changes are the controller's records, never this set's.
        let Some(dir) = &self.dir else { return Err(AclError::Storage("the ACLs follow the metadata log here: changes go through the controller".into())) };
        write_atomic(&StdIo, &dir.join(FILE), encode(next).as_bytes()).map_err(|e| AclError::Storage(e.to_string()))
    }
}

/// The bindings one CreateAcls request adds to `current`, decided as Kafka's broker and
/// controller decide it: each binding on its own (an invalid one fails alone); one that exists
/// already, or comes twice in the request, succeeds and adds nothing. Returns the bindings to add
/// and one result per binding. Pure: a single node stores the additions in its file, a quorum's
/// controller turns them into AccessControlEntry records.
pub fn decide_create(current: &BTreeSet<AclBinding>, bindings: Vec<Result<AclBinding, AclError>>) -> (Vec<AclBinding>, Vec<Result<(), AclError>>) {
    let mut added: BTreeSet<AclBinding> = BTreeSet::new();
    let mut results = Vec::with_capacity(bindings.len());
    for b in bindings {
        match b {
            Ok(b) => {
                if !current.contains(&b) {
                    added.insert(b);
                }
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if added.len() > BINDINGS_PER_CHANGE_MAX {
        // Kafka's words (its controller's PolicyViolationException for an oversized batch).
        let e = AclError::TooManyToAdd("Unable to perform excessively large batch operation.".into());
        return (Vec::new(), results.into_iter().map(|_| Err(e.clone())).collect());
    }
    (added.into_iter().collect(), results)
}

/// The bindings one DeleteAcls request removes from `current`, decided as Kafka 4.0's controller
/// decides it: each filter reports every binding of `current` it matches (an ACL two filters
/// match is reported by both, and removed once); an invalid filter fails alone. Returns every
/// removed binding, once each, and one result per filter. Pure, shared as [`decide_create`] is.
pub fn decide_delete(current: &BTreeSet<AclBinding>, filters: &[Result<AclFilter, AclError>]) -> (Vec<AclBinding>, Vec<Result<Vec<AclBinding>, AclError>>) {
    let mut removed = BTreeSet::new();
    let mut crossed = false;
    let results = filters
        .iter()
        .map(|f| {
            let f = f.as_ref().map_err(Clone::clone)?;
            let matched: Vec<AclBinding> = current.iter().filter(|a| f.matches(a)).cloned().collect();
            let newly = matched.iter().filter(|a| !removed.contains(*a)).count();
            if !matched.is_empty() && (crossed || removed.len() + newly > BINDINGS_PER_CHANGE_MAX) {
                crossed = true;
                return Err(AclError::TooManyToRemove(format!("Cannot remove more than {BINDINGS_PER_CHANGE_MAX} acls in a single delete operation.")));
            }
            removed.extend(matched.iter().cloned());
            Ok(matched)
        })
        .collect();
    (removed.into_iter().collect(), results)
}

/// The bindings of a metadata image's ACL records, with their ids.
pub fn bindings_by_id(records: &BTreeMap<Uuid, AccessControlEntryRecord>) -> BTreeMap<AclBinding, Uuid> {
    records.iter().filter_map(|(id, r)| AclBinding::from_record(r).map(|b| (b, *id))).collect()
}

/// The authorizer's question answered on a given ACL set: a super user may do everything, else
/// Kafka's rules decide (see the module comment). The broker's [`Authorizer`] asks it of its set,
/// the controller listener of the applied image's.
pub fn authorized(acls: &AclSet, config: &AuthorizerConfig, principal: &str, host: IpAddr, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
    config.super_users.contains(principal) || decide(acls, config, principal, &host_string(host), operation, resource_type, name)
}

/// A client's address as an ACL's host names it: as Java's getHostAddress() prints it, which is
/// what Kafka compares (IPv4 dotted; IPv6 as eight hex groups without zero compression, e.g.
/// `0:0:0:0:0:0:0:1`; an IPv4-mapped IPv6 address as its IPv4 address).
pub fn host_string(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.segments().iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":"),
    }
}

/// The decision for a principal that is not a super user.
fn decide(acls: &AclSet, config: &AuthorizerConfig, principal: &str, host: &str, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
    let mut any_acl = false;
    let mut allowed = false;
    for acl in acls.covering(resource_type, name) {
        any_acl = true;
        if (acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL) || (acl.host != WILDCARD && acl.host != host) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation.deny_implies(operation) => return false,
            Permission::Allow if acl.operation.allow_implies(operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_acl && config.allow_everyone_if_no_acl_found)
}

/// Groups bindings by resource (type, name, pattern) for DescribeAcls' answer.
pub fn by_resource(acls: Vec<AclBinding>) -> BTreeMap<(ResourceType, String, PatternType), Vec<AclBinding>> {
    let mut out: BTreeMap<(ResourceType, String, PatternType), Vec<AclBinding>> = BTreeMap::new();
    for a in acls {
        out.entry((a.resource_type, a.name.clone(), a.pattern)).or_default().push(a);
    }
    out
}

/// The file: a version line, then one line per ACL: resource type, pattern type, operation and
/// permission codes, then resource name, principal and host in base64 (so any name fits).
fn encode(acls: &BTreeSet<AclBinding>) -> String {
    let mut text = format!("{VERSION}\n");
    for a in acls {
        let line = [
            a.resource_type.code().to_string(),
            a.pattern.code().to_string(),
            a.operation.code().to_string(),
            a.permission.code().to_string(),
            B64.encode(&a.name),
            B64.encode(&a.principal),
            B64.encode(&a.host),
        ];
        text.push_str(&line.join(" "));
        text.push('\n');
    }
    text
}

fn decode(text: &str) -> Option<BTreeSet<AclBinding>> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return None;
    }
    let mut acls = BTreeSet::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        let [t, p, o, perm, name, principal, host] = f[..] else { return None };
        let text = |s: &str| B64.decode(s).ok().and_then(|b| String::from_utf8(b).ok());
        acls.insert(AclBinding {
            resource_type: ResourceType::from_code(t.parse().ok()?)?,
            pattern: PatternType::from_code(p.parse().ok()?)?,
            operation: Operation::from_code(o.parse().ok()?)?,
            permission: Permission::from_code(perm.parse().ok()?)?,
            name: text(name)?,
            principal: text(principal)?,
            host: text(host)?,
        });
    }
    Some(acls)
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {} {} from {} {:?} {:?}", self.resource_type.name(), self.pattern, self.name, self.principal, self.host, self.permission, self.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn acl(t: ResourceType, name: &str, pattern: PatternType, principal: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding { resource_type: t, name: name.into(), pattern, principal: principal.into(), host: WILDCARD.into(), operation: op, permission: perm }
    }

    fn authorizer(config: AuthorizerConfig, acls: Vec<AclBinding>) -> (tempfile::TempDir, Authorizer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Authorizer::load(dir.path(), config).expect("load");
        assert!(a.create(acls.into_iter().map(Ok).collect()).iter().all(Result::is_ok));
        (dir, a)
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn the_authorized_operation_fields_of_every_supported_operation_are_kafkas() {
        // Kafka 4.0's supported operations per resource type, as bits of their codes.
        assert_eq!(ResourceType::Topic.all_operations(), (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11));
        assert_eq!(ResourceType::Group.all_operations(), (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11));
        assert_eq!(ResourceType::Cluster.all_operations(), (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12));
        assert_eq!(ResourceType::TransactionalId.all_operations(), (1 << 4) | (1 << 8));
        assert_eq!(operations_field(std::iter::empty()), 0);
    }

    #[test]
    fn literal_prefixed_and_wildcard_patterns_match_as_kafka_matches_them() {
        let (_d, a) = authorizer(
            AuthorizerConfig::default(),
            vec![
                acl(Topic, "orders", Literal, "User:alice", Read, Allow),
                acl(Topic, "pay-", Prefixed, "User:bob", Write, Allow),
                acl(Topic, "*", Literal, "User:carol", Read, Allow),
                acl(Group, "g", Literal, "User:*", Read, Allow),
            ],
        );
        assert!(a.authorize("User:alice", HOST, Read, Topic, "orders"));
        assert!(!a.authorize("User:alice", HOST, Read, Topic, "orders2"), "a literal name is not a prefix");
        assert!(!a.authorize("User:alice", HOST, Write, Topic, "orders"), "READ does not give WRITE");
        assert!(a.authorize("User:bob", HOST, Write, Topic, "pay-eu"));
        assert!(!a.authorize("User:bob", HOST, Write, Topic, "pa"));
        assert!(a.authorize("User:carol", HOST, Read, Topic, "anything"));
        assert!(!a.authorize("User:carol", HOST, Read, Group, "anything"), "resource types are apart");
        assert!(a.authorize("User:dave", HOST, Read, Group, "g"), "User:* is every principal");
        assert!(!a.authorize("User:dave", HOST, Read, Topic, "orders"), "no ACL for dave: refused");
    }

    #[test]
    fn deny_beats_allow_and_denies_only_its_own_operation() {
        let (_d, a) = authorizer(
            AuthorizerConfig::default(),
            vec![
                acl(Topic, "*", Literal, "User:alice", All, Allow),
                acl(Topic, "secret", Literal, "User:alice", Read, Deny),
                acl(Topic, "x-", Prefixed, "User:*", All, Deny),
            ],
        );
        assert!(!a.authorize("User:alice", HOST, Read, Topic, "secret"));
        assert!(a.authorize("User:alice", HOST, Describe, Topic, "secret"), "a DENY of READ does not deny DESCRIBE");
        assert!(a.authorize("User:alice", HOST, Write, Topic, "secret"));
        assert!(!a.authorize("User:alice", HOST, Describe, Topic, "x-1"), "a DENY of ALL denies every operation");
    }

    #[test]
    fn allows_imply_describe_and_describe_configs() {
        for (op, implied) in [(Read, Describe), (Write, Describe), (Delete, Describe), (Alter, Describe), (AlterConfigs, DescribeConfigs)] {
            let (_d, a) = authorizer(AuthorizerConfig::default(), vec![acl(Topic, "t", Literal, "User:u", op, Allow)]);
            assert!(a.authorize("User:u", HOST, implied, Topic, "t"), "{op:?} implies {implied:?}");
        }
        for op in [Create, ClusterAction, DescribeConfigs, IdempotentWrite] {
            let (_d, a) = authorizer(AuthorizerConfig::default(), vec![acl(Topic, "t", Literal, "User:u", op, Allow)]);
            assert!(!a.authorize("User:u", HOST, Describe, Topic, "t"), "{op:?} does not imply DESCRIBE");
        }
    }

    #[test]
    fn hosts_super_users_and_allow_everyone_if_no_acl_found() {
        let mut host_acl = acl(Topic, "t", Literal, "User:u", Read, Allow);
        host_acl.host = "10.0.0.2".into();
        let config = AuthorizerConfig { super_users: BTreeSet::from(["User:admin".to_string()]), allow_everyone_if_no_acl_found: true };
        let (_d, a) = authorizer(config, vec![host_acl.clone(), acl(Topic, "denied", Literal, "User:admin", All, Deny)]);
        assert!(!a.authorize("User:u", HOST, Read, Topic, "t"), "another host: the ACL does not apply, but the topic has one");
        assert!(a.authorize("User:u", "10.0.0.2".parse().unwrap(), Read, Topic, "t"));
        assert!(a.authorize("User:u", HOST, Write, Topic, "free"), "no ACL on the topic: allow.everyone.if.no.acl.found");
        assert!(a.authorize("User:admin", HOST, All, Topic, "denied"), "super users skip the ACLs");
        let (_d2, strict) = authorizer(AuthorizerConfig::default(), vec![]);
        assert!(!strict.authorize("User:u", HOST, Write, Topic, "free"), "the default refuses without ACLs");
    }

    #[test]
    fn hosts_are_compared_as_java_prints_them() {
        assert_eq!(host_string("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(host_string("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(host_string("fe80::12ab".parse().unwrap()), "fe80:0:0:0:0:0:0:12ab");
        assert_eq!(host_string("::ffff:10.0.0.7".parse().unwrap()), "10.0.0.7");
        let mut v6 = acl(Topic, "t", Literal, "User:u", Read, Allow);
        v6.host = "0:0:0:0:0:0:0:1".into();
        let (_d, a) = authorizer(AuthorizerConfig::default(), vec![v6]);
        assert!(a.authorize("User:u", "::1".parse().unwrap(), Read, Topic, "t"));
    }

    #[test]
    fn authorize_any_finds_an_allow_not_cancelled_by_a_deny() {
        let (_d, a) = authorizer(
            AuthorizerConfig::default(),
            vec![acl(Topic, "a", Literal, "User:u", Write, Allow), acl(Topic, "b-", Prefixed, "User:v", Write, Allow), acl(Topic, "b", Prefixed, "User:v", Write, Deny)],
        );
        assert!(a.authorize_any("User:u", HOST, Write, Topic));
        assert!(!a.authorize_any("User:u", HOST, Write, Group));
        assert!(!a.authorize_any("User:v", HOST, Write, Topic), "the DENY prefix covers the ALLOW prefix");
        assert!(!a.authorize_any("User:w", HOST, Write, Topic));
    }

    #[test]
    fn bindings_and_filters_are_checked_with_kafkas_words() {
        let bad = |r: Result<AclBinding, AclError>| match r {
            Err(AclError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3)), "Invalid resourceType ANY");
        assert_eq!(bad(AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3)), "Invalid patternType MATCH");
        assert_eq!(bad(AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3)), "Invalid operation ANY");
        assert_eq!(bad(AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 0)), "Invalid permissionType UNKNOWN");
        assert_eq!(bad(AclBinding::from_wire(4, "c", 3, "User:a", "*", 3, 3)), "The only valid name for the CLUSTER resource is kafka-cluster");
        assert_eq!(bad(AclBinding::from_wire(2, "", 3, "User:a", "*", 3, 3)), "Invalid empty resource name");
        assert!(bad(AclBinding::from_wire(2, "t", 3, "alice", "*", 3, 3)).starts_with("Could not parse principal"));
        assert!(AclBinding::from_wire(4, "kafka-cluster", 3, "User:a", "*", 7, 3).is_ok());
        assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err());
        assert!(AclFilter::from_wire(1, None, 1, None, None, 0, 1).is_err());
        assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 1).is_ok());
    }

    #[test]
    fn filters_select_by_any_match_and_exact_pattern_and_deletes_survive_a_reload() {
        let acls = vec![
            acl(Topic, "orders", Literal, "User:a", Read, Allow),
            acl(Topic, "ord", Prefixed, "User:a", Write, Allow),
            acl(Topic, "*", Literal, "User:b", Read, Allow),
            acl(Group, "orders", Literal, "User:a", Read, Allow),
        ];
        let (dir, a) = authorizer(AuthorizerConfig::default(), acls);
        let f = |t: i8, name: Option<&str>, p: i8| AclFilter::from_wire(t, name, p, None, None, 1, 1).expect("filter");
        assert_eq!(a.describe(&f(1, None, 1)).len(), 4);
        assert_eq!(a.describe(&f(2, Some("orders"), 1)).len(), 1, "ANY: names compared as they are");
        assert_eq!(a.describe(&f(2, Some("orders"), 2)).len(), 3, "MATCH: literal, prefix and wildcard");
        assert_eq!(a.describe(&f(2, None, 4)).len(), 1);
        let r = a.delete(vec![Ok(f(2, Some("orders"), 2)), Err(AclError::InvalidRequest("x".into())), Ok(f(2, None, 1))]);
        assert_eq!(r[0].as_ref().map(Vec::len), Ok(3));
        assert!(r[1].is_err());
        assert_eq!(r[2].as_ref().map(Vec::len), Ok(3), "every binding a filter matches, whatever an earlier filter matched (Kafka 4.0's controller)");
        let reloaded = Authorizer::load(dir.path(), AuthorizerConfig::default()).expect("reload");
        assert_eq!(reloaded.describe(&f(1, None, 1)), vec![acl(Group, "orders", Literal, "User:a", Read, Allow)]);
    }

    #[test]
    fn create_adds_each_valid_binding_once_and_fails_invalid_ones_alone() {
        let current = BTreeSet::from([acl(Topic, "t", Literal, "User:a", Read, Allow)]);
        let fresh = acl(Topic, "t", Literal, "User:b", Write, Allow);
        let invalid = AclBinding::from_wire(4, "c", 3, "User:a", "*", 3, 3);
        let (added, results) = decide_create(&current, vec![Ok(current.first().unwrap().clone()), Ok(fresh.clone()), invalid.clone(), Ok(fresh.clone())]);
        assert_eq!(added, vec![fresh], "an existing binding and a repeated one add nothing");
        assert_eq!(results, vec![Ok(()), Ok(()), Err(invalid.unwrap_err()), Ok(())]);
        assert_eq!(decide_create(&current, vec![]), (vec![], vec![]));
    }

    #[test]
    fn delete_reports_per_filter_every_binding_it_matches_and_removes_each_once() {
        let current = BTreeSet::from([
            acl(Topic, "orders", Literal, "User:a", Read, Allow),
            acl(Topic, "ord", Prefixed, "User:a", Write, Allow),
            acl(Group, "g", Literal, "User:b", Read, Allow),
        ]);
        let f = |t: i8, name: Option<&str>, p: i8| AclFilter::from_wire(t, name, p, None, None, 1, 1);
        let filters = vec![f(2, Some("orders"), 2), f(0, None, 1), f(1, None, 1), f(3, Some("none"), 3)];
        let (removed, results) = decide_delete(&current, &filters);
        assert_eq!(removed, current.iter().cloned().collect::<Vec<_>>(), "everything went, once each");
        assert_eq!(results[0].as_ref().map(Vec::len), Ok(2), "MATCH: the literal and the prefix");
        assert_eq!(results[1], Err(AclError::InvalidRequest("Unknown patternFilter.".into())));
        assert_eq!(results[2].as_ref().map(Vec::len), Ok(3), "the first filter's matches too");
        assert_eq!(results[3], Ok(vec![]));
        assert_eq!(decide_delete(&current, &[]).0, vec![]);
    }

    #[test]
    fn one_change_adds_or_removes_at_most_ten_thousand_bindings_as_kafkas_controller() {
        let binding = |i: usize| acl(Topic, &format!("t{i}"), Literal, "User:a", Read, Allow);
        let at_cap: Vec<_> = (0..BINDINGS_PER_CHANGE_MAX).map(|i| Ok(binding(i))).collect();
        let (added, results) = decide_create(&BTreeSet::new(), at_cap);
        assert_eq!((added.len(), results.iter().all(Result::is_ok)), (BINDINGS_PER_CHANGE_MAX, true), "10,000 new bindings are one change");
        // One more than the cap fails whole, every binding with Kafka's POLICY_VIOLATION; bindings
        // already stored do not count.
        let current = BTreeSet::from([binding(0)]);
        let over: Vec<_> = (0..=BINDINGS_PER_CHANGE_MAX + 1).map(|i| Ok(binding(i))).collect();
        let (added, results) = decide_create(&current, over.clone());
        assert!(added.is_empty());
        assert!(results.iter().all(|r| matches!(r, Err(AclError::TooManyToAdd(m)) if m == "Unable to perform excessively large batch operation.")));
        assert_eq!(crate::api::error_code::acl(results[0].as_ref().unwrap_err()), 44, "POLICY_VIOLATION");
        assert_eq!(decide_create(&current, over[..=BINDINGS_PER_CHANGE_MAX].to_vec()).0.len(), BINDINGS_PER_CHANGE_MAX);

        // Deleting: the filter that would cross the cap, and every later one that matches
        // anything, fail (UNKNOWN_SERVER_ERROR) and remove nothing; the filters before it remove
        // theirs, a binding two of them match counted once.
        let current: BTreeSet<AclBinding> = (0..BINDINGS_PER_CHANGE_MAX + 5).map(binding).collect();
        let literal = |name: &str| AclFilter::from_wire(2, Some(name), 3, None, None, 1, 1);
        let filters = vec![literal("t1"), literal("t1"), AclFilter::from_wire(2, None, 1, None, None, 1, 1), literal("t2"), literal("absent")];
        let (removed, results) = decide_delete(&current, &filters);
        assert_eq!(removed, vec![binding(1)]);
        assert_eq!(results[0].as_ref().map(Vec::len), Ok(1));
        assert_eq!(results[1].as_ref().map(Vec::len), Ok(1), "reported again, counted once");
        assert!(matches!(&results[2], Err(AclError::TooManyToRemove(m)) if m == "Cannot remove more than 10000 acls in a single delete operation."));
        assert_eq!(crate::api::error_code::acl(results[2].as_ref().unwrap_err()), -1, "UNKNOWN_SERVER_ERROR");
        assert!(matches!(&results[3], Err(AclError::TooManyToRemove(_))), "a later filter matching anything fails too, as in Kafka");
        assert_eq!(results[4], Ok(vec![]), "one matching nothing does not");
        let everything = [AclFilter::from_wire(2, None, 1, None, None, 1, 1)];
        assert!(decide_delete(&current.iter().take(BINDINGS_PER_CHANGE_MAX).cloned().collect(), &everything).1[0].is_ok(), "exactly the cap is one change");
    }

    /// Timings for the report; run with `cargo test --release --lib measure_acl -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_acl_decisions() {
        use std::time::Instant;
        let mut set = BTreeSet::new();
        for i in 0..10_000 {
            let (name, pattern) = if i % 2 == 0 { (format!("team-{i}-"), Prefixed) } else { (format!("orders-{i}"), Literal) };
            set.insert(acl(Topic, &name, pattern, &format!("User:u{}", i % 100), Read, Allow));
        }
        let config = AuthorizerConfig::default();
        let indexed = AclSet::new(set.clone());
        let names: Vec<String> = (0..1000).map(|i| format!("team-{}-events", i * 2)).collect();
        let n = 100_000;
        let t0 = Instant::now();
        let mut allowed = 0;
        for i in 0..n {
            allowed += decide(&indexed, &config, "User:u0", "10.0.0.1", Read, Topic, &names[i % names.len()]) as usize;
        }
        let index = t0.elapsed() / n as u32;
        let t0 = Instant::now();
        let scans = 1000;
        for i in 0..scans {
            let name = &names[i % names.len()];
            std::hint::black_box(set.iter().filter(|a| a.resource_type == Topic && a.covers(name)).count());
        }
        let scan = t0.elapsed() / scans as u32;
        println!("10,000 ACLs: a decision through the index {index:?}, a scan of every binding {scan:?} ({allowed} of {n} allowed)");
    }

    #[test]
    fn bindings_round_trip_through_metadata_records() {
        let mut b = acl(Cluster, CLUSTER_NAME, Literal, "User:broker", ClusterAction, Allow);
        b.host = "10.0.0.1".into();
        let id = Uuid::from_u128(7);
        let record = b.to_record(id);
        assert_eq!(AclBinding::from_record(&record), Some(b.clone()));
        let bad = AccessControlEntryRecord { operation: 0, ..record.clone() };
        assert_eq!(AclBinding::from_record(&bad), None, "a code no binding has");
        let by_id = bindings_by_id(&BTreeMap::from([(id, record), (Uuid::from_u128(8), bad)]));
        assert_eq!(by_id, BTreeMap::from([(b, id)]));
    }

    #[test]
    fn a_following_authorizer_takes_the_images_acls_and_stores_nothing() {
        let a = Authorizer::following(AuthorizerConfig { super_users: BTreeSet::from(["User:ANONYMOUS".to_string()]), allow_everyone_if_no_acl_found: false });
        assert!(!a.authorize("User:u", HOST, Read, Topic, "t"));
        assert!(a.authorize("User:ANONYMOUS", HOST, ClusterAction, Cluster, CLUSTER_NAME), "super users before any ACL");
        let granted = acl(Topic, "t", Literal, "User:u", Read, Allow);
        a.follow(BTreeSet::from([granted.clone()]));
        assert!(a.contains(&granted));
        assert!(a.authorize("User:u", HOST, Read, Topic, "t"));
        assert!(matches!(a.create(vec![Ok(acl(Topic, "x", Literal, "User:u", Read, Allow))])[0], Err(AclError::Storage(_))), "changes go through the controller");
        a.follow(BTreeSet::new());
        assert!(!a.authorize("User:u", HOST, Read, Topic, "t"), "a removal in the image removes the grant");
    }

    #[test]
    fn a_corrupt_file_is_refused_not_guessed_at() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "0\n2 3 3 3 notbase64!\n").expect("write");
        assert!(Authorizer::load(dir.path(), AuthorizerConfig::default()).is_err());
        std::fs::write(dir.path().join(FILE), "7\n").expect("write");
        assert!(Authorizer::load(dir.path(), AuthorizerConfig::default()).is_err());
    }

    fn any_acl() -> impl Strategy<Value = AclBinding> {
        let names = prop::sample::select(vec!["*", "a", "ab", "abc", "b"]);
        let principals = prop::sample::select(vec!["User:*", "User:u", "User:v"]);
        (0..2i8, names, 3..5i8, principals, prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.9"]), 2..15i8, 2..4i8).prop_map(|(t, n, p, pr, h, o, perm)| {
            AclBinding::from_wire(t + 2, n, p, pr, h, o, perm).expect("valid")
        })
    }

    proptest! {
        /// The decision is Kafka's, restated naively: refused if any applicable DENY covers the
        /// operation, else allowed if any applicable ALLOW does; adding a DENY never allows more,
        /// and an ALLOW never refuses more.
        #[test]
        fn deny_always_wins_and_allows_only_add(acls in prop::collection::vec(any_acl(), 0..12), extra in any_acl(), op in 2..15i8, name in prop::sample::select(vec!["a", "ab", "abc", "b", "c"])) {
            let op = Operation::from_code(op).expect("op");
            let config = AuthorizerConfig::default();
            let set: BTreeSet<AclBinding> = acls.into_iter().collect();
            let before = decide(&AclSet::new(set.clone()), &config, "User:u", "10.0.0.1", op, Topic, name);
            let mut more = set.clone();
            more.insert(extra.clone());
            let after = decide(&AclSet::new(more.clone()), &config, "User:u", "10.0.0.1", op, Topic, name);
            match extra.permission {
                Deny => prop_assert!(!after || before),
                Allow => prop_assert!(after || !before),
            }
            let applicable = |a: &&AclBinding| a.resource_type == Topic && a.covers(name) && (a.principal == "User:u" || a.principal == "User:*") && (a.host == "*" || a.host == "10.0.0.1");
            let denied = more.iter().filter(applicable).any(|a| a.permission == Deny && (a.operation == All || a.operation == op));
            if denied { prop_assert!(!after); }
        }

        /// The index finds exactly the bindings a scan of every binding finds (names with
        /// multi-byte characters included), so the decision is the one Kafka's rules give.
        #[test]
        fn the_index_decides_as_a_scan_of_every_binding(
            acls in prop::collection::vec((0..2i8, prop::sample::select(vec!["*", "a", "ab", "é", "éa", "éab", "b"]), 3..5i8, 2..15i8, 2..4i8), 0..16),
            op in 2..15i8,
            t in 0..2i8,
            name in prop::sample::select(vec!["a", "ab", "abc", "é", "éa", "éabc", "b", "*", "c"]),
            everyone in any::<bool>(),
        ) {
            let set: BTreeSet<AclBinding> = acls.into_iter().map(|(t, n, p, o, perm)| AclBinding::from_wire(t + 2, n, p, "User:u", "*", o, perm).expect("valid")).collect();
            let config = AuthorizerConfig { allow_everyone_if_no_acl_found: everyone, ..AuthorizerConfig::default() };
            let (op, t) = (Operation::from_code(op).expect("op"), ResourceType::from_code(t + 2).expect("type"));
            let indexed = AclSet::new(set.clone());
            let mut found: Vec<&AclBinding> = indexed.covering(t, name).collect();
            found.sort();
            let scanned: Vec<&AclBinding> = set.iter().filter(|a| a.resource_type == t && a.covers(name)).collect();
            prop_assert_eq!(found, scanned);
            let denied = set.iter().any(|a| a.resource_type == t && a.covers(name) && a.permission == Deny && a.operation.deny_implies(op));
            let allowed = set.iter().any(|a| a.resource_type == t && a.covers(name) && a.permission == Allow && a.operation.allow_implies(op));
            let none = !set.iter().any(|a| a.resource_type == t && a.covers(name));
            prop_assert_eq!(decide(&indexed, &config, "User:u", "10.0.0.1", op, t, name), !denied && (allowed || (none && everyone)));
        }
    }
}
