//! The host manager: which hosts are managed, their workers, and the operations the API
//! calls. Handlers stay thin; the decisions live here.

use crate::cache::{host_detail, host_summary, vm_summary};
use crate::cache::{pool_detail, pool_summary, vm_detail, Cache, HostEntry};
use crate::config::ApiPolicy;
use crate::error::CoreError;
use crate::host::{self, HostHandle, HostMsg, Job, JobCtx, Shared};
use crate::storage;
use crate::vmops::{self, HostFacts};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use uvmm_api::{
    ActionResponse, BackupDetail, BackupSummary, BackupVersion, CreatePoolRequest, CreateVmRequest,
    CreateVolumeRequest, DeleteResponse, DiskAddRequest, HostDetail, HostOrigin, HostSummary,
    NicAddRequest, PoolDetail, PoolSummary, Profile, PruneResponse, RestoreReport, RestoreRequest,
    VmChangeResponse, VmDetail, VmPage, VmPatch, VmQuery, VolumeSummary,
};
use uvmm_backup::atomic::write_atomic;
use uvmm_model::hosts::HostUri;
use uvmm_model::Action;

/// How long `POST /hosts` waits for the first connection attempt before answering.
const ADD_WAIT: Duration = Duration::from_secs(10);

/// Runtime changes to the host list, kept in `<state_dir>/hosts.json` so they survive a
/// restart: hosts added through the API, and configured hosts removed through it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostChanges {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

pub struct Manager {
    pub shared: Arc<Shared>,
    workers: Mutex<HashMap<String, HostHandle>>,
    changes: Mutex<HostChanges>,
    changes_file: PathBuf,
    profiles: Vec<Profile>,
    /// What API clients may ask for (see `ApiPolicy`).
    pub policy: ApiPolicy,
}

fn backup_error(e: uvmm_backup::store::BackupError) -> CoreError {
    use uvmm_backup::store::BackupError as B;
    match e {
        B::NotFound(_) | B::NoVersion { .. } => CoreError::NotFound(e.to_string()),
        B::Ambiguous { .. } => CoreError::Conflict(e.to_string()),
        B::Invalid(m) => CoreError::BadRequest(m),
        B::Io { .. } => CoreError::Internal(e.to_string()),
    }
}

/// What a job needs to know about its host, taken from the cache.
fn facts(cache: &Cache, h: &HostEntry, image_dirs: &[String]) -> HostFacts {
    let sources = |h: &HostEntry| -> Vec<(String, String)> {
        h.vms()
            .values()
            .flat_map(|v| {
                let who = format!("{}@{}", v.name, h.id);
                v.disk_sources().map(move |p| (p.to_string(), who.clone()))
            })
            .collect()
    };
    let info = h.info.clone().unwrap_or_default();
    HostFacts {
        uri: h.uri.clone(),
        host_id: h.id.clone(),
        local: HostUri::parse(&h.uri)
            .map(|u| u.is_local())
            .unwrap_or(false),
        caps: info.caps.clone(),
        limits: uvmm_model::validate::HostLimits {
            memory_kib: Some(info.memory_kib),
            cpus: Some(info.cpus),
        },
        users_here: sources(h),
        users_anywhere: cache.hosts().flat_map(sources).collect(),
        image_dirs: image_dirs.to_vec(),
    }
}

/// The value checks of a new VM (name, memory, vCPUs, notes, devices) for a definition a
/// client sends to be restored.
fn check_client_definition_values(xml: &str, facts: &HostFacts) -> Result<(), CoreError> {
    let def = uvmm_model::domain::parse_domain(xml)
        .map_err(|e| CoreError::BadRequest(format!("not a domain definition: {e}")))?;
    uvmm_model::validate::definition_values(&def, None)
        .map_err(|e| CoreError::BadRequest(format!("the definition cannot be restored: {e}")))?;
    uvmm_model::validate::host_limits(&def, None, facts.limits)
        .map_err(|e| CoreError::Conflict(format!("the definition cannot be restored here: {e}")))
}

impl Manager {
    pub fn new(
        shared: Arc<Shared>,
        state_dir: PathBuf,
        profiles: Vec<Profile>,
    ) -> Result<Manager, CoreError> {
        let changes_file = state_dir.join("hosts.json");
        let changes = match std::fs::read(&changes_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| CoreError::Internal(format!("{}: {e}", changes_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostChanges::default(),
            Err(e) => {
                return Err(CoreError::Internal(format!(
                    "{}: {e}",
                    changes_file.display()
                )))
            }
        };
        Ok(Manager {
            shared,
            workers: Mutex::new(HashMap::new()),
            changes: Mutex::new(changes),
            changes_file,
            profiles,
            policy: ApiPolicy::default(),
        })
    }

    pub fn with_policy(mut self, policy: ApiPolicy) -> Manager {
        self.policy = policy;
        self
    }

    /// Start managing the configured hosts plus the runtime changes.
    pub fn start(&self, configured: &[(String, HostOrigin)]) {
        let changes = self
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut all: Vec<(String, HostOrigin)> = configured
            .iter()
            .filter(|(u, _)| !changes.removed.contains(u))
            .cloned()
            .collect();
        for uri in &changes.added {
            if all.iter().any(|(u, _)| u == uri) {
                continue;
            }
            // Saved by an API client, perhaps before today's rules: check again, since
            // libvirt acts on the URI with uvmmd's rights at every (re)connection.
            if let Err(e) = self.check_runtime_uri(uri) {
                tracing::error!(%uri, "not connecting to a host added through the API: {e}");
                continue;
            }
            all.push((uri.clone(), HostOrigin::Runtime));
        }
        for (uri, origin) in all {
            self.spawn(&uri, origin, None);
        }
    }

    fn spawn(&self, uri: &str, origin: HostOrigin, first: Option<oneshot::Sender<()>>) {
        let parsed = HostUri::parse(uri)
            .map(|u| u.default_id())
            .unwrap_or_else(|_| "host".into());
        let now = SystemTime::now();
        self.shared.update(|c| {
            let id = c.free_id(&parsed);
            ((), c.add_host(uri, &id, origin, now))
        });
        let handle = host::spawn(self.shared.clone(), uri.to_string(), first);
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uri.to_string(), handle);
    }

    fn save_changes(&self, changes: &HostChanges) -> Result<(), CoreError> {
        let json =
            serde_json::to_vec_pretty(changes).map_err(|e| CoreError::Internal(e.to_string()))?;
        write_atomic(&self.changes_file, &json, 0o644).map_err(|e| {
            CoreError::Internal(format!("cannot save {}: {e}", self.changes_file.display()))
        })
    }

    pub fn list_hosts(&self) -> Vec<HostSummary> {
        let now = SystemTime::now();
        let mut hosts: Vec<HostSummary> = self
            .shared
            .read()
            .hosts()
            .map(|h| host_summary(h, now))
            .collect();
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        hosts
    }

    pub fn host(&self, id: &str) -> Result<HostDetail, CoreError> {
        let cache = self.shared.read();
        Ok(host_detail(cache.resolve_host(id)?, SystemTime::now()))
    }

    /// The rules for hosts added through the API (see `RuntimeHostPolicy`).
    fn check_runtime_uri(&self, uri: &str) -> Result<HostUri, CoreError> {
        let parsed = HostUri::parse(uri).map_err(|e| CoreError::BadRequest(e.to_string()))?;
        parsed
            .check_runtime(&self.policy.runtime_hosts)
            .map_err(|e| CoreError::Forbidden(e.to_string()))?;
        if parsed.driver == "test" && parsed.path != "/default" {
            // The path is below a permitted directory; so must be what it resolves to (a
            // symbolic link in there must not lead libvirt elsewhere).
            // A node file that does not exist yet may come later (the host then connects):
            // its directory must resolve below the permitted ones.
            let path = std::path::Path::new(&parsed.path);
            let real = match std::fs::canonicalize(path) {
                Ok(r) => Some(r),
                Err(_) => path
                    .parent()
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .map(|p| p.join(path.file_name().unwrap_or_default())),
            };
            let inside = real.is_some_and(|r| {
                uvmm_model::hosts::path_under(
                    &r.to_string_lossy(),
                    &self.policy.runtime_hosts.test_dirs,
                )
            });
            if !inside {
                return Err(CoreError::Forbidden(format!(
                    "{} leads outside the permitted directories",
                    parsed.path
                )));
            }
        }
        Ok(parsed)
    }

    pub async fn add_host(&self, uri: &str) -> Result<HostSummary, CoreError> {
        let parsed = self.check_runtime_uri(uri)?;
        let (tx, rx) = oneshot::channel();
        {
            // Hold the changes lock across check, persist and spawn: two concurrent adds of
            // one URI must not both succeed.
            let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            if self.shared.read().host(uri).is_some() {
                return Err(CoreError::Conflict(format!(
                    "host {uri} is already managed"
                )));
            }
            let mut next = changes.clone();
            next.removed.retain(|u| u != uri);
            if !next.added.iter().any(|u| u == uri) {
                next.added.push(uri.to_string());
            }
            self.save_changes(&next)?;
            *changes = next;
            self.spawn(&parsed.uri, HostOrigin::Runtime, Some(tx));
        }
        // Answer with the outcome of the first attempt when it comes quickly; otherwise the
        // host is reported as still connecting.
        let _ = tokio::time::timeout(ADD_WAIT, rx).await;
        let now = SystemTime::now();
        let cache = self.shared.read();
        cache
            .host(uri)
            .map(|h| host_summary(h, now))
            .ok_or_else(|| CoreError::Internal("host vanished while being added".into()))
    }

    pub fn remove_host(&self, id: &str) -> Result<HostSummary, CoreError> {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let (uri, summary) = {
            let cache = self.shared.read();
            let h = cache.resolve_host(id)?;
            (h.uri.clone(), host_summary(h, SystemTime::now()))
        };
        let mut next = changes.clone();
        let was_runtime = next.added.contains(&uri);
        next.added.retain(|u| *u != uri);
        if !was_runtime && !next.removed.contains(&uri) {
            next.removed.push(uri.clone());
        }
        self.save_changes(&next)?;
        *changes = next;
        if let Some(handle) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uri)
        {
            handle.stop();
        }
        self.shared.update(|c| ((), c.remove_host(&uri)));
        Ok(summary)
    }

    pub fn list_vms(&self, q: &VmQuery) -> Result<VmPage, CoreError> {
        self.shared.read().list_vms(q)
    }

    /// `GET /api/v1/vms` without parameters, the most frequent and largest read: rendered
    /// once and reused until something changes. Statistics (CPU, memory) are sampled
    /// every interval anyway, so a render is reused for up to one interval after them;
    /// any change that produces an event (state, definition, host) renders anew.
    pub fn list_all_json(&self) -> Result<bytes::Bytes, CoreError> {
        let mut slot = self
            .shared
            .list_render
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let cache = self.shared.read();
        if let Some(r) = slot.as_ref() {
            let fresh_stats = r.stats_generation == cache.stats_generation
                || r.at.elapsed() < self.shared.timing.stats_interval;
            if r.generation == cache.generation && fresh_stats {
                return Ok(r.body.clone());
            }
        }
        let page = cache.list_vms(&VmQuery::default())?;
        let body = bytes::Bytes::from(
            serde_json::to_vec(&page).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        *slot = Some(crate::host::ListRender {
            generation: cache.generation,
            stats_generation: cache.stats_generation,
            at: std::time::Instant::now(),
            body: body.clone(),
        });
        Ok(body)
    }

    pub fn vm(&self, uuid: &str, host: Option<&str>) -> Result<VmDetail, CoreError> {
        let cache = self.shared.read();
        let (h, v) = cache.resolve_vm(uuid, host)?;
        Ok(crate::cache::vm_detail(h, v))
    }

    /// Run `f` on the worker of host `uri` and wait for its answer.
    pub async fn run_job<T: Send + 'static>(
        &self,
        uri: &str,
        f: impl FnOnce(&JobCtx<'_>) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, CoreError> {
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let host = uri.to_string();
        let job: Job = Box::new(move |ctx| {
            let result = match ctx {
                Some(ctx) => f(ctx),
                None => Err(JobCtx::unavailable(&host, &shared.read())),
            };
            let _ = tx.send(result);
        });
        self.worker_send(uri, HostMsg::Job(job))?;
        let timeout = self.shared.timing.call_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(CoreError::Timeout {
                host: uri.to_string(),
                secs: timeout.as_secs(),
            }),
            Ok(Err(_)) => Err(CoreError::Internal("host worker stopped".into())),
            Ok(Ok(result)) => result,
        }
    }

    /// Resolve a VM and make sure its host is connected: (host URI, UUID, facts).
    ///
    /// Every caller goes on to change or read the VM through a job. A definition check
    /// is queued first (the worker runs jobs in order): a change made without an event
    /// (`virsh ... --config`) since the last look is then recorded as `external` before
    /// the coming change records its own version, instead of being claimed by it.
    fn target(
        &self,
        uuid: &str,
        host: Option<&str>,
    ) -> Result<(String, String, HostFacts), CoreError> {
        let (uri, id, facts) = {
            let cache = self.shared.read();
            let (h, v) = cache.resolve_vm(uuid, host)?;
            h.ensure_available()?;
            (
                h.uri.clone(),
                v.uuid.clone(),
                facts(&cache, h, &self.policy.image_dirs),
            )
        };
        let check = id.clone();
        let job: Job = Box::new(move |ctx| {
            if let Some(ctx) = ctx {
                ctx.check_definition(&check);
            }
        });
        self.worker_send(&uri, HostMsg::Job(job))?;
        Ok((uri, id, facts))
    }

    pub async fn vm_action(
        &self,
        uuid: &str,
        host: Option<&str>,
        action: Action,
    ) -> Result<ActionResponse, CoreError> {
        let (uri, uuid, hint) = {
            let cache = self.shared.read();
            let (h, v) = cache.resolve_vm(uuid, host)?;
            h.ensure_available()?;
            action.check(v.state)?;
            let hint = match action {
                Action::Start => vmops::kvm_start_hint(&v.name, &v.def.domain_type),
                _ => None,
            };
            (h.uri.clone(), v.uuid.clone(), hint)
        };
        let id = uuid.clone();
        self.run_job(&uri, move |ctx| {
            ctx.hv.action(&id, action).map_err(|mut e| {
                if let Some(h) = hint {
                    e.message = format!("{}. {h}", e.message.trim_end_matches('.'));
                }
                e
            })?;
            // Answer only once the cache shows the result, so a `vm list` right after the
            // request sees the new state.
            ctx.refresh(&id);
            Ok(())
        })
        .await?;
        let cache = self.shared.read();
        let vm = cache
            .host(&uri)
            .and_then(|h| h.vms().get(&uuid).map(|v| vm_summary(h, v)));
        Ok(ActionResponse { action, vm })
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles.clone()
    }

    pub fn profile(&self, name: &str) -> Result<Profile, CoreError> {
        self.profiles
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("no profile '{name}'")))
    }

    fn changed(
        &self,
        uri: &str,
        uuid: &str,
        notes: Vec<String>,
        warnings: Vec<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let cache = self.shared.read();
        let vm = cache
            .host(uri)
            .and_then(|h| h.vms().get(uuid).map(|v| vm_detail(h, v)))
            .ok_or_else(|| {
                CoreError::Internal(format!("VM {uuid} is not in the cache after the change"))
            })?;
        Ok(VmChangeResponse {
            vm,
            notes,
            warnings,
        })
    }

    pub async fn create_vm(&self, req: CreateVmRequest) -> Result<VmChangeResponse, CoreError> {
        // A name that refers to nothing is a 404, like an unknown path: the request is
        // well-formed (the schema's `minLength`), the thing is missing.
        let profile = self.profile(&req.profile).map_err(|_| {
            CoreError::NotFound(format!(
                "no profile '{}' (known: {})",
                req.profile,
                self.profiles
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        uvmm_model::validate::vm_name(&req.name).map_err(|e| CoreError::BadRequest(e.0))?;
        let (uri, facts) = {
            let cache = self.shared.read();
            let h = cache
                .resolve_host(&req.host)
                .map_err(|_| CoreError::NotFound(format!("no host '{}'", req.host)))?;
            h.ensure_available()?;
            if h.vms().values().any(|v| v.name == req.name) {
                return Err(CoreError::Conflict(format!(
                    "a VM named '{}' already exists on {}",
                    req.name, h.id
                )));
            }
            (h.uri.clone(), facts(&cache, h, &self.policy.image_dirs))
        };
        let plan = vmops::CreatePlan {
            profile,
            req,
            facts,
        };
        let (uuid, notes, warnings) = self
            .run_job(&uri, move |ctx| vmops::create(ctx, plan))
            .await?;
        self.changed(&uri, &uuid, notes, warnings)
    }

    pub async fn edit_vm(
        &self,
        uuid: &str,
        host: Option<&str>,
        patch: VmPatch,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        let id = uuid.clone();
        let warnings = self
            .run_job(&uri, move |ctx| {
                vmops::edit(ctx, &id, patch, if_match.as_deref(), &facts)
            })
            .await?;
        self.changed(&uri, &uuid, vec![], warnings)
    }

    pub async fn delete_vm(
        &self,
        uuid: &str,
        host: Option<&str>,
        volumes: String,
        if_match: Option<String>,
    ) -> Result<DeleteResponse, CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        self.run_job(&uri, move |ctx| {
            vmops::delete(ctx, &facts, &uuid, &volumes, if_match.as_deref())
        })
        .await
    }

    pub async fn add_disk(
        &self,
        uuid: &str,
        host: Option<&str>,
        req: DiskAddRequest,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        let id = uuid.clone();
        let (target, warnings) = self
            .run_job(&uri, move |ctx| {
                vmops::add_disk(ctx, &facts, &id, req, if_match.as_deref())
            })
            .await?;
        self.changed(&uri, &uuid, vec![format!("added drive {target}")], warnings)
    }

    pub async fn remove_disk(
        &self,
        uuid: &str,
        host: Option<&str>,
        target: String,
        delete_volume: bool,
        if_match: Option<String>,
    ) -> Result<(DeleteResponse, Vec<String>), CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        self.run_job(&uri, move |ctx| {
            vmops::remove_disk(
                ctx,
                &facts,
                &uuid,
                &target,
                delete_volume,
                if_match.as_deref(),
            )
        })
        .await
    }

    pub async fn set_boot(
        &self,
        uuid: &str,
        host: Option<&str>,
        target: String,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        let id = uuid.clone();
        let warnings = self
            .run_job(&uri, move |ctx| {
                vmops::set_boot(ctx, &facts, &id, &target, if_match.as_deref())
            })
            .await?;
        self.changed(&uri, &uuid, vec![], warnings)
    }

    pub async fn change_media(
        &self,
        uuid: &str,
        host: Option<&str>,
        target: String,
        source: Option<String>,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, facts) = self.target(uuid, host)?;
        let id = uuid.clone();
        let warnings = self
            .run_job(&uri, move |ctx| {
                vmops::change_media(
                    ctx,
                    &facts,
                    &id,
                    &target,
                    source.as_deref(),
                    if_match.as_deref(),
                )
            })
            .await?;
        self.changed(&uri, &uuid, vec![], warnings)
    }

    pub async fn add_nic(
        &self,
        uuid: &str,
        host: Option<&str>,
        req: NicAddRequest,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, _) = self.target(uuid, host)?;
        let id = uuid.clone();
        let (mac, warnings) = self
            .run_job(&uri, move |ctx| {
                vmops::add_nic(ctx, &id, req, if_match.as_deref())
            })
            .await?;
        self.changed(
            &uri,
            &uuid,
            vec![format!("added network interface {mac}")],
            warnings,
        )
    }

    pub async fn remove_nic(
        &self,
        uuid: &str,
        host: Option<&str>,
        mac: String,
        if_match: Option<String>,
    ) -> Result<VmChangeResponse, CoreError> {
        let (uri, uuid, _) = self.target(uuid, host)?;
        let id = uuid.clone();
        let warnings = self
            .run_job(&uri, move |ctx| {
                vmops::remove_nic(ctx, &id, &mac, if_match.as_deref())
            })
            .await?;
        self.changed(&uri, &uuid, vec![], warnings)
    }

    pub fn list_pools(&self, host: Option<&str>) -> Result<Vec<PoolSummary>, CoreError> {
        let cache = self.shared.read();
        let only = host
            .map(|h| cache.resolve_host(h).map(|e| e.uri.clone()))
            .transpose()?;
        let mut out: Vec<PoolSummary> = cache
            .hosts()
            .filter(|h| only.as_deref().is_none_or(|u| u == h.uri))
            .flat_map(|h| h.pools.iter().map(move |p| pool_summary(h, p)))
            .collect();
        out.sort_by(|a, b| a.host_id.cmp(&b.host_id).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    pub fn pool(&self, host: &str, pool: &str) -> Result<PoolDetail, CoreError> {
        let cache = self.shared.read();
        let h = cache.resolve_host(host)?;
        let p = h
            .pools
            .iter()
            .find(|p| p.info.def.name == pool)
            .ok_or_else(|| CoreError::NotFound(format!("no storage pool '{pool}' on {}", h.id)))?;
        Ok(pool_detail(&cache, h, p))
    }

    /// A connected host's URI, or why not.
    fn host_uri(&self, host: &str) -> Result<String, CoreError> {
        let cache = self.shared.read();
        let h = cache.resolve_host(host)?;
        h.ensure_available()?;
        Ok(h.uri.clone())
    }

    pub async fn create_pool(
        &self,
        host: &str,
        req: CreatePoolRequest,
    ) -> Result<(PoolDetail, Vec<String>), CoreError> {
        uvmm_model::storage::pool_xml(&req.pool).map_err(|e| CoreError::BadRequest(e.0))?;
        let uri = self.host_uri(host)?;
        let name = req.pool.name.clone();
        let warnings = self
            .run_job(&uri, move |ctx| storage::create_pool(ctx, req))
            .await?;
        Ok((self.pool(&uri, &name)?, warnings))
    }

    pub async fn pool_action(
        &self,
        host: &str,
        pool: &str,
        action: String,
    ) -> Result<PoolDetail, CoreError> {
        let uri = self.host_uri(host)?;
        let detail = self.pool(&uri, pool)?;
        let running: Vec<String> = {
            let cache = self.shared.read();
            detail
                .volumes
                .iter()
                .flat_map(|v| v.used_by.iter())
                .filter(|who| {
                    let (name, hid) = who.rsplit_once('@').unwrap_or((who, ""));
                    cache.hosts().any(|h| {
                        h.id == hid
                            && h.vms()
                                .values()
                                .any(|vm| vm.name == name && vm.state.is_active())
                    })
                })
                .cloned()
                .collect()
        };
        let p = pool.to_string();
        self.run_job(&uri, move |ctx| {
            storage::pool_action(ctx, &p, &action, &running)
        })
        .await?;
        self.pool(&uri, pool)
    }

    pub async fn delete_pool(
        &self,
        host: &str,
        pool: &str,
        delete_storage: bool,
    ) -> Result<(), CoreError> {
        let uri = self.host_uri(host)?;
        let detail = self.pool(&uri, pool)?;
        let mut in_use: Vec<String> = detail
            .volumes
            .iter()
            .flat_map(|v| v.used_by.clone())
            .collect();
        in_use.sort();
        in_use.dedup();
        let p = pool.to_string();
        self.run_job(&uri, move |ctx| {
            storage::delete_pool(ctx, &p, delete_storage, &in_use)
        })
        .await
    }

    fn volume(&self, uri: &str, pool: &str, name: &str) -> Result<VolumeSummary, CoreError> {
        self.pool(uri, pool)?
            .volumes
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| CoreError::NotFound(format!("no volume '{name}' in pool '{pool}'")))
    }

    pub async fn create_volume(
        &self,
        host: &str,
        pool: &str,
        req: CreateVolumeRequest,
    ) -> Result<VolumeSummary, CoreError> {
        let uri = self.host_uri(host)?;
        let name = req.name.clone();
        let p = pool.to_string();
        self.run_job(&uri, move |ctx| storage::create_volume(ctx, &p, req))
            .await?;
        self.volume(&uri, pool, &name)
    }

    pub async fn clone_volume(
        &self,
        host: &str,
        pool: &str,
        source: &str,
        name: String,
    ) -> Result<VolumeSummary, CoreError> {
        let uri = self.host_uri(host)?;
        let (p, s, n) = (pool.to_string(), source.to_string(), name.clone());
        self.run_job(&uri, move |ctx| storage::clone_volume(ctx, &p, &s, &n))
            .await?;
        self.volume(&uri, pool, &name)
    }

    pub async fn delete_volume(&self, host: &str, pool: &str, name: &str) -> Result<(), CoreError> {
        let uri = self.host_uri(host)?;
        let v = self.volume(&uri, pool, name)?;
        let (p, n) = (pool.to_string(), name.to_string());
        self.run_job(&uri, move |ctx| {
            storage::delete_volume(ctx, &p, &n, v.keep_reason)
        })
        .await
    }

    pub async fn resize_volume(
        &self,
        host: &str,
        pool: &str,
        name: &str,
        size: u64,
    ) -> Result<VolumeSummary, CoreError> {
        let uri = self.host_uri(host)?;
        let (p, n) = (pool.to_string(), name.to_string());
        self.run_job(&uri, move |ctx| storage::resize_volume(ctx, &p, &n, size))
            .await?;
        self.volume(&uri, pool, name)
    }

    /// Prometheus text of everything the cache knows.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.shared.read())
    }

    fn store(&self) -> Result<&uvmm_backup::BackupStore, CoreError> {
        self.shared
            .backups
            .as_deref()
            .ok_or_else(|| CoreError::NotFound("this daemon keeps no backups".into()))
    }

    pub fn backups(&self, pattern: Option<&str>) -> Result<Vec<BackupSummary>, CoreError> {
        let mut list = self.store()?.list().map_err(backup_error)?;
        if let Some(p) = pattern {
            list.retain(|b| uvmm_model::glob::matches(p, &b.name));
        }
        Ok(list)
    }

    pub fn backup(&self, vm: &str) -> Result<BackupDetail, CoreError> {
        let store = self.store()?;
        let summary = store.find(vm).map_err(backup_error)?;
        let versions = store.versions(&summary.uuid).map_err(backup_error)?;
        Ok(BackupDetail { summary, versions })
    }

    pub fn backup_version(
        &self,
        vm: &str,
        version: Option<u32>,
    ) -> Result<BackupVersion, CoreError> {
        let store = self.store()?;
        let detail = self.backup(vm)?;
        let n = version.unwrap_or(detail.summary.latest);
        let meta = detail
            .versions
            .iter()
            .find(|m| m.version == n)
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("the backup of {vm} has no version {n}")))?;
        // The files keep secrets (a restore brings a VNC password back); clients do not
        // see them.
        let xml = uvmm_model::secrets::redact(
            &store
                .version_xml(&detail.summary.uuid, n)
                .map_err(backup_error)?,
        );
        Ok(BackupVersion {
            uuid: detail.summary.uuid,
            meta,
            xml,
        })
    }

    pub fn backup_diff(&self, vm: &str, from: u32, to: u32) -> Result<String, CoreError> {
        let store = self.store()?;
        let summary = store.find(vm).map_err(backup_error)?;
        store
            .diff_with(&summary.uuid, from, to, |x| uvmm_model::secrets::redact(&x))
            .map_err(backup_error)
    }

    pub fn prune_backups(&self) -> Result<PruneResponse, CoreError> {
        let removed = self
            .store()?
            .prune(self.shared.retention, SystemTime::now())
            .map_err(backup_error)?;
        Ok(PruneResponse { removed })
    }

    /// Restore a VM from a backup (or a definition brought along) onto a managed host.
    pub async fn restore(&self, req: RestoreRequest) -> Result<RestoreReport, CoreError> {
        let (xml, default_host) = match (&req.backup, &req.xml) {
            (Some(vm), None) => {
                let v = self.backup_version(vm, req.version)?;
                let xml = self
                    .store()?
                    .version_xml(&v.uuid, v.meta.version)
                    .map_err(backup_error)?;
                (xml, Some(v.meta.host))
            }
            (None, Some(xml)) => (xml.clone(), None),
            _ => {
                return Err(CoreError::BadRequest(
                    "give either backup (name or UUID) or xml".into(),
                ))
            }
        };
        let host = req
            .host
            .clone()
            .or(default_host.filter(|h| !h.is_empty()))
            .ok_or_else(|| {
                // The request is fine; this backup lacks what it needs (old records).
                CoreError::Conflict(
                    "the backup does not say which host it came from: give host".into(),
                )
            })?;
        let (uri, local, facts) = {
            let cache = self.shared.read();
            let h = cache.resolve_host(&host).map_err(|_| {
                CoreError::NotFound(format!("host {host} is not managed by this daemon; add it first or restore directly with uvmm-restore --direct"))
            })?;
            h.ensure_available()?;
            (
                h.uri.clone(),
                HostUri::parse(&h.uri)
                    .map(|u| u.is_local())
                    .unwrap_or(false),
                facts(&cache, h, &self.policy.image_dirs),
            )
        };
        use uvmm_backup::restore::Existing;
        let existing = match (req.force, req.replace) {
            (_, true) => Existing::Replace,
            (true, false) => Existing::Redefine,
            (false, false) => Existing::Refuse,
        };
        // A definition brought by the client passes the checks of a new VM first; one from
        // uvmmd's own backups was read from libvirt and is restored as it was.
        let from_client = req.xml.is_some();
        if from_client {
            check_client_definition_values(&xml, &facts)?;
        }
        self.run_job(&uri, move |ctx| {
            if from_client {
                vmops::check_client_definition(ctx.hv, &facts, &xml)?;
            }
            let mut report = uvmm_backup::restore::restore(ctx.hv, &xml, existing, local).map_err(
                |e| match e {
                    uvmm_backup::restore::RestoreError::Refused(_) => {
                        CoreError::Conflict(e.to_string())
                    }
                    uvmm_backup::restore::RestoreError::Invalid(m) => CoreError::BadRequest(m),
                    uvmm_backup::restore::RestoreError::Libvirt(l) => CoreError::from(l),
                },
            )?;
            report.warnings.extend(ctx.backup(&report.uuid, "restore"));
            ctx.refresh(&report.uuid);
            Ok(report)
        })
        .await
    }

    /// The libvirt XML of a VM (live, or the persistent definition), without secrets.
    pub async fn vm_xml(
        &self,
        uuid: &str,
        host: Option<&str>,
        inactive: bool,
    ) -> Result<String, CoreError> {
        let (uri, uuid, _) = self.target(uuid, host)?;
        self.run_job(&uri, move |ctx| {
            Ok(ctx.hv.domain_xml(&uuid, inactive, false)?)
        })
        .await
    }

    fn worker_send(&self, uri: &str, msg: HostMsg) -> Result<(), CoreError> {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .get(uri)
            .ok_or_else(|| CoreError::NotFound(format!("no host '{uri}'")))?
            .send(msg)
    }

    /// Stop every worker (they finish their current libvirt call, then exit).
    pub fn shutdown(&self) {
        for (_, handle) in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            handle.stop();
        }
    }
}
