//! [`GpuContext`]: the app's `Device`/`Queue`, or one this crate picks for examples, CLI and tests.

use super::layout::Layout;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the adapter and device offer, read once when a [`GpuContext`] is made: every choice of
/// kernel reads it from here.
#[derive(Clone, Debug)]
pub struct AdapterFacts {
    /// A software adapter (device type `Cpu`: lavapipe, llvmpipe, WARP, SwiftShader), where a
    /// dispatch is expensive and loops are capped ([`is_software`]).
    pub software: bool,
    /// The device has `Features::SUBGROUP`.
    pub subgroups: bool,
    /// The adapter's smallest subgroup size (0 where unknown).
    pub subgroup_min_size: u32,
    /// The device has `Features::SHADER_F16`.
    pub shader_f16: bool,
    /// The device's limits.
    pub limits: wgpu::Limits,
}

/// Whether an adapter is a software one (device type `Cpu`): the one test of it in the crate.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// A device and queue to run on, with what the adapter reported about itself.
///
/// `Device` and `Queue` are cheap clones in wgpu 30, so building several layers from one context
/// shares one device, and its clones share one pipeline cache: models of the same shape and
/// specialisation build each pipeline once.
#[derive(Clone, Debug)]
pub struct GpuContext {
    /// The device every buffer and pipeline is created on.
    pub device: wgpu::Device,
    /// The queue forwards are submitted to.
    pub queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    facts: Arc<AdapterFacts>,
    /// Shader modules, layouts and pipelines built so far on this device, shared by its models.
    pub(crate) pipelines: Arc<PipelineCache>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Polls of this crate take turns: wgpu-core 30 asserts (and panics) when two threads poll
    /// one device at once and one of them reads the fence before the other retires submissions.
    poll_lock: Arc<Mutex<()>>,
}

impl GpuContext {
    /// Wraps the app's own device and queue (cheap clones of the app's handles); the adapter's
    /// description comes from `device.adapter_info()`.
    ///
    /// The device's lost callback stays the app's: wgpu keeps one callback per device, and this
    /// crate does not replace it. To have the crate refuse work on a lost device with
    /// [`Error::DeviceLost`] (wgpu itself panics when a buffer is created on one), mark the loss
    /// from that callback with a [`LossMarker`] (which holds no device handle, so no cycle):
    ///
    /// ```no_run
    /// # fn f(device: wgpu::Device, queue: wgpu::Queue) {
    /// let ctx = wgpu_gru::gpu::GpuContext::from_device(device.clone(), queue);
    /// let marker = ctx.loss_marker();
    /// device.set_device_lost_callback(move |reason, msg| {
    ///     marker.mark(&format!("{reason:?}: {msg}"));
    ///     // … and whatever the app does on loss.
    /// });
    /// # }
    /// ```
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        let features = device.features();
        let facts = Arc::new(AdapterFacts {
            software: is_software(&info),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            limits: device.limits(),
        });
        GpuContext {
            device,
            queue,
            info,
            facts,
            pipelines: Arc::default(),
            lost: Arc::new(Mutex::new(None)),
            uncaptured: Arc::new(Mutex::new(None)),
            poll_lock: Arc::new(Mutex::new(())),
        }
    }

    /// A handle that records the device's loss for this context and its clones, for the app's
    /// device-lost callback (devices this crate creates use one in their own).
    pub fn loss_marker(&self) -> LossMarker {
        LossMarker(self.lost.clone())
    }

    /// Picks an adapter and creates a device with the adapter's real limits (blocking).
    ///
    /// Honours `WGPU_BACKEND` (e.g. `vulkan`, `gl`), `WGPU_ADAPTER_NAME` (a substring of the
    /// adapter's name) and `WGPU_POWER_PREF`. Returns [`Error::NoAdapter`] when none is found.
    pub fn new_default() -> Result<Self> {
        pollster::block_on(Self::new_default_async())
    }

    /// Async form of [`GpuContext::new_default`].
    pub async fn new_default_async() -> Result<Self> {
        Self::with_limits(None).await
    }

    /// Like [`GpuContext::new_default_async`], but requests `limits` instead of the adapter's own
    /// (each must be within the adapter's). Tests use it to exercise small-limit paths.
    pub async fn with_limits(limits: Option<wgpu::Limits>) -> Result<Self> {
        let adapter = Self::default_adapter_async().await?;
        Self::from_adapter(&adapter, limits).await
    }

    /// The adapter [`GpuContext::new_default`] would use, without creating a device on it
    /// (blocking): for looking at it first, as [`crate::auto::choose`] does.
    pub fn default_adapter() -> Result<wgpu::Adapter> {
        pollster::block_on(Self::default_adapter_async())
    }

    /// Async form of [`GpuContext::default_adapter`].
    pub async fn default_adapter_async() -> Result<wgpu::Adapter> {
        // Without WGPU_BACKEND, try the primary backends (Vulkan, Metal, DX12) first and GL only
        // where none answers: probing GL needlessly can open a display connection.
        match wgpu::Backends::from_env() {
            Some(backends) => Self::pick_adapter(backends).await,
            None => match Self::pick_adapter(wgpu::Backends::PRIMARY).await {
                Ok(a) => Ok(a),
                Err(primary) => Self::pick_adapter(wgpu::Backends::GL)
                    .await
                    .map_err(|_| primary),
            },
        }
    }

    /// Creates a device on `adapter` with its features this crate uses and `limits` (default:
    /// the adapter's own), and wraps it as [`GpuContext::new_default`] does.
    pub async fn from_adapter(
        adapter: &wgpu::Adapter,
        limits: Option<wgpu::Limits>,
    ) -> Result<Self> {
        let wanted = wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let limits = limits.unwrap_or_else(|| adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-gru device"),
                required_features: features,
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice(e.to_string()))?;
        let ctx = Self::from_device(device, queue);
        // A device this crate made is ours to configure: record its loss, and errors that escape
        // every error scope (wgpu's default handler panics), and report them from the next call.
        let marker = ctx.loss_marker();
        ctx.device.set_device_lost_callback(move |reason, msg| {
            marker.mark(&format!("{reason:?}: {msg}"));
        });
        let flag = ctx.uncaptured.clone();
        ctx.device
            .on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
                if let Ok(mut l) = flag.lock()
                    && l.is_none()
                {
                    *l = Some(format!("uncaptured: {e}"));
                }
            }));
        Ok(ctx)
    }

    async fn pick_adapter(backends: wgpu::Backends) -> Result<wgpu::Adapter> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
            let name = name.to_lowercase();
            return instance
                .enumerate_adapters(backends)
                .await
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&name))
                .ok_or_else(|| Error::NoAdapter(format!(" matching WGPU_ADAPTER_NAME={name:?}")));
        }
        instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!(" ({e}; backends {backends:?})")))
    }

    /// What the adapter reported: name, backend, device type.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Compute pipelines built on this context (and its clones) so far: models of the same
    /// specialisation share them, and each is built when a plan first dispatches it.
    pub fn pipelines_built(&self) -> usize {
        self.pipelines.pipelines_built()
    }

    /// What the adapter and device offer (read once, when the context was made).
    pub fn facts(&self) -> &AdapterFacts {
        &self.facts
    }

    /// A one-line description such as `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// `queue.submit(buffers)`, never while one of this crate's polls runs: wgpu-core 30 asserts
    /// when a submit's own cleanup retires submissions between a timed-out wait's fence read
    /// and its queue check (`Device::maintain`, "If the queue is empty, …").
    pub(crate) fn submit(
        &self,
        buffers: impl IntoIterator<Item = wgpu::CommandBuffer>,
    ) -> wgpu::SubmissionIndex {
        let _turn = self
            .poll_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.queue.submit(buffers)
    }

    /// `device.poll(ty)`, one poll (or submit) of this crate's at a time on the device.
    pub(crate) fn poll(
        &self,
        ty: wgpu::PollType,
    ) -> std::result::Result<wgpu::PollStatus, wgpu::PollError> {
        let _turn = self
            .poll_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.device.poll(ty)
    }

    /// Lets wgpu deliver a pending device-lost callback, then [`check_lost`](Self::check_lost).
    pub fn refresh_lost(&self) -> Result<()> {
        // A poll error here is itself a sign of loss; the flag below says which.
        let _ = self.poll(wgpu::PollType::Poll);
        self.check_lost()
    }

    /// [`Error::DeviceLost`] once the device has been lost (for good), or [`Error::Gpu`] once for
    /// each error that escaped every error scope on a device this crate created.
    pub fn check_lost(&self) -> Result<()> {
        if let Some(msg) = self.uncaptured.lock().ok().and_then(|mut u| u.take()) {
            return Err(Error::Gpu(format!("uncaptured wgpu error: {msg}")));
        }
        match self.lost.lock() {
            Ok(l) => match l.as_ref() {
                Some(msg) => Err(Error::DeviceLost(msg.clone())),
                None => Ok(()),
            },
            Err(_) => Err(Error::Gpu("device-lost flag poisoned".into())),
        }
    }
}

/// Records a device's loss for a [`GpuContext`]: after [`LossMarker::mark`], every call on the
/// context returns [`Error::DeviceLost`] before touching the device.
#[derive(Clone, Debug)]
pub struct LossMarker(Arc<Mutex<Option<String>>>);

impl LossMarker {
    /// Marks the device lost, with wgpu's reason and message (the first mark is kept).
    pub fn mark(&self, message: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.get_or_insert_with(|| message.to_string());
        }
    }
}

/// Shader modules, layouts and pipelines built on one device, by key, shared by the models on
/// it (through [`GpuContext`] and its clones). Entries live as long as the context.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<String, Arc<wgpu::ShaderModule>>>,
    layouts: Mutex<HashMap<String, Arc<Layout>>>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
}

impl std::fmt::Debug for PipelineCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineCache")
            .field("modules", &self.modules.lock().map_or(0, |m| m.len()))
            .field("pipelines", &self.pipelines_built())
            .finish()
    }
}

/// The entry of `key` in `map`, built by `build` (under the lock: one build per key) if absent.
fn cached<T>(
    map: &Mutex<HashMap<String, Arc<T>>>,
    key: &str,
    build: impl FnOnce() -> T,
) -> Result<Arc<T>> {
    let mut map = map
        .lock()
        .map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
    if let Some(v) = map.get(key) {
        return Ok(v.clone());
    }
    let v = Arc::new(build());
    map.insert(key.to_string(), v.clone());
    Ok(v)
}

impl PipelineCache {
    /// Pipelines built so far.
    pub(crate) fn pipelines_built(&self) -> usize {
        self.pipelines.lock().map_or(0, |m| m.len())
    }

    /// The layout of `key`, built by `build` on first use.
    pub(crate) fn layout(&self, key: &str, build: impl FnOnce() -> Layout) -> Result<Arc<Layout>> {
        cached(&self.layouts, key, build)
    }

    /// The shader module of `key`, built by `build` on first use.
    pub(crate) fn module(
        &self,
        key: &str,
        build: impl FnOnce() -> wgpu::ShaderModule,
    ) -> Result<Arc<wgpu::ShaderModule>> {
        cached(&self.modules, key, build)
    }

    /// The pipeline of `key`, built by `build` on first use.
    pub(crate) fn pipeline(
        &self,
        key: &str,
        build: impl FnOnce() -> wgpu::ComputePipeline,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        cached(&self.pipelines, key, build)
    }
}
