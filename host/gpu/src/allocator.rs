//! Which devices a task gets.

use std::collections::HashSet;

use flowmesh_types::GpuRequest;

use crate::DeviceState;

/// The devices to assign for `request`: ones that are not `taken` by
/// another task, have no process from outside FlowMesh on them, contain
/// the requested name (case-insensitive) and have the requested memory;
/// the lowest indexes first. The error says what is missing.
pub fn choose(
    devices: &[DeviceState],
    taken: &HashSet<String>,
    request: &GpuRequest,
) -> Result<Vec<String>, String> {
    let fitting: Vec<&DeviceState> = devices
        .iter()
        .filter(|device| request.fits(&device.name, device.memory_total))
        .collect();
    let mut free: Vec<&DeviceState> = fitting
        .iter()
        .copied()
        .filter(|device| !taken.contains(&device.uuid) && !device.has_processes)
        .collect();
    free.sort_by_key(|device| device.index);
    if free.len() < request.count as usize {
        let foreign = fitting
            .iter()
            .filter(|device| !taken.contains(&device.uuid) && device.has_processes)
            .count();
        let assigned = fitting
            .iter()
            .filter(|device| taken.contains(&device.uuid))
            .count();
        return Err(format!(
            "needs {} GPU(s){}: {} fit, {assigned} assigned to other tasks, {foreign} busy with processes outside FlowMesh",
            request.count,
            match &request.model {
                Some(model) => format!(" of type {model}"),
                None => String::new(),
            },
            fitting.len(),
        ));
    }
    Ok(free
        .into_iter()
        .take(request.count as usize)
        .map(|device| device.uuid.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(index: u32, name: &str, gib: u64, has_processes: bool) -> DeviceState {
        DeviceState {
            index,
            uuid: format!("GPU-{index}"),
            name: name.into(),
            memory_total: gib << 30,
            memory_free: gib << 30,
            utilization: 0,
            has_processes,
        }
    }

    fn request(count: u32, model: Option<&str>, gib: u64) -> GpuRequest {
        GpuRequest {
            count,
            model: model.map(str::to_string),
            memory_bytes: gib << 30,
        }
    }

    #[test]
    fn devices_are_chosen_by_name_memory_and_index() {
        let devices = [
            device(1, "NVIDIA A100-SXM4-80GB", 80, false),
            device(0, "NVIDIA A100-SXM4-40GB", 40, false),
            device(2, "NVIDIA H100 80GB HBM3", 80, false),
        ];
        let none = HashSet::new();
        assert_eq!(
            choose(&devices, &none, &request(2, Some("a100"), 0)),
            Ok(vec!["GPU-0".to_string(), "GPU-1".to_string()])
        );
        assert_eq!(
            choose(&devices, &none, &request(1, Some("A100"), 64)),
            Ok(vec!["GPU-1".to_string()])
        );
        assert_eq!(
            choose(&devices, &none, &request(2, None, 64)),
            Ok(vec!["GPU-1".to_string(), "GPU-2".to_string()])
        );
    }

    #[test]
    fn taken_devices_and_devices_busy_outside_are_not_free() {
        let devices = [
            device(0, "NVIDIA H100", 80, false),
            device(1, "NVIDIA H100", 80, true),
            device(2, "NVIDIA H100", 80, false),
        ];
        let taken: HashSet<String> = ["GPU-0".to_string()].into();
        assert_eq!(
            choose(&devices, &taken, &request(1, Some("H100"), 0)),
            Ok(vec!["GPU-2".to_string()])
        );
        let error = choose(&devices, &taken, &request(2, Some("H100"), 0)).expect_err("one free");
        assert_eq!(
            error,
            "needs 2 GPU(s) of type H100: 3 fit, 1 assigned to other tasks, 1 busy with processes outside FlowMesh"
        );
    }
}
