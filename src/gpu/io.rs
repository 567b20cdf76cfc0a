//! The wgpu helpers every GPU entry point shares: building layouts and pipelines, reading buffers
//! back after a submission (blocking, or as a future), and turning error scopes into typed errors.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_intrusive::channel::shared::oneshot_channel;

use super::context::GpuContext;
use crate::error::{Error, Result};

/// `items` invocations in workgroups of `wg`, as an `(x, y)` grid within the per-dimension limit
/// (the shader rebuilds the flat index from `num_workgroups`).
pub(crate) fn grid(items: usize, wg: u32, max_dim: u32, what: &str) -> Result<(u32, u32)> {
    let groups = items.div_ceil(wg as usize).max(1) as u64;
    let x = groups.min(max_dim as u64);
    let y = groups.div_ceil(x);
    if y > max_dim as u64 {
        return Err(Error::DeviceLimit {
            what: format!("{what} workgroups"),
            needed: groups,
            limit: max_dim as u64 * max_dim as u64,
        });
    }
    Ok((x as u32, y as u32))
}

/// Checks that `input` (`what`) can be bound as storage and holds `rows` rows of `width` floats,
/// row `n` starting at float `offset + n · row_stride`; returns the floats it must hold.
pub(crate) fn check_strided_input(
    input: &wgpu::Buffer,
    what: &str,
    rows: usize,
    row_stride: usize,
    offset: usize,
    width: usize,
) -> Result<usize> {
    if !input.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(Error::arg(
            format!("{what} input buffer"),
            "needs BufferUsages::STORAGE",
        ));
    }
    let end = rows
        .saturating_sub(1)
        .checked_mul(row_stride)
        .and_then(|v| v.checked_add(offset))
        .and_then(|v| v.checked_add(width))
        .ok_or_else(|| Error::Overflow(format!("{what} input extent")))?;
    if end as u64 * 4 > input.size() {
        return Err(Error::shape(
            format!("{what} input buffer (bytes)"),
            format!("at least {}", end as u64 * 4),
            input.size(),
        ));
    }
    Ok(end)
}

/// Checks that an output of `out_bytes` and `input` each fit one storage binding of `device`.
pub(crate) fn check_binding_fits(
    device: &wgpu::Device,
    what: &str,
    out_bytes: u64,
    input: &wgpu::Buffer,
) -> Result<()> {
    let limits = device.limits();
    let lim = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if out_bytes > lim || input.size() > limits.max_storage_buffer_binding_size {
        return Err(Error::DeviceLimit {
            what: format!("{what} binding (bytes)"),
            needed: out_bytes.max(input.size()),
            limit: lim,
        });
    }
    Ok(())
}

/// How long one wait for the GPU may block before [`read_back_async`] yields to its executor.
const WAIT_SLICE: Duration = Duration::from_millis(1);

/// Reads the first `dst.len()` floats of each buffer into `dst` once `submission` has finished,
/// blocking the calling thread: [`read_back_async`] under `pollster`.
pub(crate) fn read_back(
    ctx: &GpuContext,
    submission: wgpu::SubmissionIndex,
    pairs: &mut [(&wgpu::Buffer, &mut [f32])],
) -> Result<()> {
    pollster::block_on(read_back_async(ctx, submission, pairs))
}

/// Reads the first `dst.len()` floats of each (mappable) buffer into `dst` once `submission`
/// has finished: the buffers are mapped with `map_async`, whose callbacks answer through
/// `futures-intrusive` oneshot channels. Natively the future drives the device itself, waiting for
/// its own submission (not the whole queue) in slices of at most a millisecond and yielding to
/// the executor between them; on the web the browser delivers the callbacks.
pub(crate) async fn read_back_async(
    ctx: &GpuContext,
    submission: wgpu::SubmissionIndex,
    pairs: &mut [(&wgpu::Buffer, &mut [f32])],
) -> Result<()> {
    let mut receivers = Vec::with_capacity(pairs.len());
    for (buf, dst) in pairs.iter() {
        let (tx, rx) = oneshot_channel();
        buf.slice(..(dst.len() as u64 * 4).max(4))
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        receivers.push(rx);
    }
    loop {
        match ctx.poll(wgpu::PollType::Wait {
            submission_index: Some(submission.clone()),
            timeout: Some(WAIT_SLICE),
        }) {
            Ok(_) => break,
            Err(wgpu::PollError::Timeout) => YieldNow(false).await,
            // A lost device refuses the wait (its submissions never ran): say that it is lost.
            Err(e) => {
                ctx.refresh_lost()?;
                return Err(Error::Gpu(format!("poll: {e}")));
            }
        }
    }
    let mut result = Ok(());
    for rx in &receivers {
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => result = Err(Error::Gpu(format!("map_async: {e}"))),
            None => result = Err(Error::Gpu("map callback dropped".into())),
        }
    }
    if result.is_ok() {
        for (buf, dst) in pairs.iter_mut() {
            let n = (dst.len() as u64 * 4).max(4);
            match buf.slice(..n).get_mapped_range() {
                Ok(view) => {
                    let src: &[f32] = bytemuck::cast_slice(&view);
                    let len = dst.len();
                    dst.copy_from_slice(&src[..len]);
                }
                Err(e) => result = Err(Error::Gpu(format!("mapped range: {e}"))),
            }
        }
    }
    for (buf, _) in pairs.iter() {
        buf.unmap();
    }
    result?;
    ctx.check_lost()
}

/// Gives the executor one turn.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Pops an out-of-memory scope and a validation scope (pushed in that order) into
/// [`Error::GpuOutOfMemory`] or [`Error::GpuValidation`].
///
/// On the web a page cannot block on the browser's answer: the scopes are popped there without
/// waiting, and an error that arrives later goes to the browser's console. Hot paths and the
/// web's entry points use [`pop_scopes_async`], which waits and returns it.
pub(crate) fn pop_scopes(
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(pop_scopes_async(oom, validation))
    }
    #[cfg(target_arch = "wasm32")]
    {
        // Pop now, in order (scopes nest); only the answers arrive later.
        let (oom, validation) = (oom.pop(), validation.pop());
        wasm_bindgen_futures::spawn_local(async move {
            let oom = oom.await.map(|e| Error::GpuOutOfMemory(e.to_string()));
            let validation = validation
                .await
                .map(|e| Error::GpuValidation(e.to_string()));
            for e in oom.into_iter().chain(validation) {
                web_sys::console::error_1(&format!("wgpu-gru: {e}").into());
            }
        });
        Ok(())
    }
}

/// [`pop_scopes`] as a future that waits for the answer.
pub(crate) async fn pop_scopes_async(
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
) -> Result<()> {
    // Both scopes leave the stack now, in order, on this thread; only the answers are awaited.
    let (oom, validation) = (oom.pop(), validation.pop());
    if let Some(e) = oom.await {
        return Err(Error::GpuOutOfMemory(e.to_string()));
    }
    if let Some(e) = validation.await {
        return Err(Error::GpuValidation(e.to_string()));
    }
    Ok(())
}
