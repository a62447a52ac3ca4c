//! Changing a VM's memory so that the definition stays consistent.
//!
//! libvirt's `<memory>` is the VM's total: its initial memory plus its memory devices
//! (DIMMs). With NUMA cells the initial memory *is* the sum of the cells, and QEMU's
//! driver recomputes `<memory>` from them, so setting `<memory>` alone is silently undone.
//! With `<maxMemory>` (memory hot-plug) the total must stay below that limit. This module
//! plans a new total and says in uvmm's words when it cannot be had.

use crate::domain::DomainDef;
use crate::units::{format_kib, LIBVIRT_MAX_MEMORY_KIB};

/// NUMA cells are sized in whole MiB: QEMU aligns node memory, and round numbers are what
/// people wrote in the first place.
const CELL_ALIGN_KIB: u64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("memory must not be zero")]
    Zero,
    #[error("memory {} is more than libvirt can represent (at most {})", format_kib(*.0), format_kib(LIBVIRT_MAX_MEMORY_KIB))]
    TooLarge(u64),
    #[error("memory {} is more than the VM's memory hot-plug limit <maxMemory> of {}; raise that limit first (virsh edit)", format_kib(*wanted), format_kib(*max))]
    AboveHotplugMax { wanted: u64, max: u64 },
    #[error("the VM's memory devices (DIMMs) already hold {}, so its memory must be more than that, not {}", format_kib(*devices), format_kib(*wanted))]
    NotAboveDevices { wanted: u64, devices: u64 },
    #[error("{} cannot be shared among the VM's {cells} NUMA cells (each needs at least 1 MiB)", format_kib(*initial))]
    CellsTooSmall { initial: u64, cells: usize },
}

/// Set the VM's total memory to `kib` (and its current memory to the same), scaling the
/// NUMA cells in proportion so that their sum plus the memory devices is the new total.
pub fn set_total(def: &mut DomainDef, kib: u64) -> Result<(), MemoryError> {
    if kib == 0 {
        return Err(MemoryError::Zero);
    }
    if kib > LIBVIRT_MAX_MEMORY_KIB {
        return Err(MemoryError::TooLarge(kib));
    }
    if let Some(max) = def.hotplug_max_kib {
        if kib > max {
            return Err(MemoryError::AboveHotplugMax { wanted: kib, max });
        }
    }
    let initial = kib
        .checked_sub(def.memory_devices_kib)
        .filter(|i| *i > 0)
        .ok_or(MemoryError::NotAboveDevices {
            wanted: kib,
            devices: def.memory_devices_kib,
        })?;
    if !def.numa_cells_kib.is_empty() {
        def.numa_cells_kib = scale_cells(&def.numa_cells_kib, initial)?;
    }
    def.max_memory_kib = kib;
    def.memory_kib = kib;
    Ok(())
}

/// Share `initial` KiB among cells in proportion to their present sizes, in whole MiB;
/// the last cell takes what rounding leaves, so the sum is exactly `initial`.
fn scale_cells(cells: &[u64], initial: u64) -> Result<Vec<u64>, MemoryError> {
    let too_small = MemoryError::CellsTooSmall {
        initial,
        cells: cells.len(),
    };
    let old_sum: u128 = cells.iter().map(|c| u128::from(*c)).sum();
    let n = u128::try_from(cells.len()).unwrap_or(u128::MAX);
    let mut out = Vec::with_capacity(cells.len());
    let mut given: u64 = 0;
    for (i, cell) in cells.iter().enumerate() {
        let share = if i + 1 == cells.len() {
            initial
                .checked_sub(given)
                .ok_or_else(|| too_small.clone())?
        } else {
            // Cells without a size (or all zero) are shared equally.
            let (initial, align) = (u128::from(initial), u128::from(CELL_ALIGN_KIB));
            let exact = (initial * u128::from(*cell))
                .checked_div(old_sum)
                .unwrap_or(initial / n);
            let rounded = (exact + align / 2) / align * align;
            // `rounded` is at most `initial` plus half a MiB, and `initial` fits a u64.
            u64::try_from(rounded).map_err(|_| too_small.clone())?
        };
        if share < CELL_ALIGN_KIB {
            return Err(too_small);
        }
        given = given.checked_add(share).ok_or_else(|| too_small.clone())?;
        out.push(share);
    }
    if given != initial {
        return Err(too_small);
    }
    Ok(out)
}

/// Why the memory figures of `def` do not fit together, if they do not: what
/// [`set_total`] guarantees, checked again on every definition uvmm writes.
pub fn inconsistency(def: &DomainDef) -> Option<String> {
    if def.max_memory_kib > LIBVIRT_MAX_MEMORY_KIB {
        return Some(MemoryError::TooLarge(def.max_memory_kib).to_string());
    }
    if let Some(max) = def.hotplug_max_kib {
        if def.max_memory_kib > max {
            return Some(
                MemoryError::AboveHotplugMax {
                    wanted: def.max_memory_kib,
                    max,
                }
                .to_string(),
            );
        }
    }
    if def.max_memory_kib <= def.memory_devices_kib {
        return Some(
            MemoryError::NotAboveDevices {
                wanted: def.max_memory_kib,
                devices: def.memory_devices_kib,
            }
            .to_string(),
        );
    }
    if !def.numa_cells_kib.is_empty() {
        let cells: u128 = def.numa_cells_kib.iter().map(|c| u128::from(*c)).sum();
        let initial = u128::from(def.max_memory_kib) - u128::from(def.memory_devices_kib);
        if cells != initial {
            return Some(format!(
                "the NUMA cells add up to {} but the memory without memory devices is {}",
                format_value_kib(cells),
                format_value_kib(initial)
            ));
        }
    }
    None
}

fn format_value_kib(kib: u128) -> String {
    format_kib(u64::try_from(kib).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024;
    const GIB: u64 = 1024 * 1024;

    fn vm(cells: &[u64], max: Option<u64>, devices: u64) -> DomainDef {
        let initial: u64 = if cells.is_empty() {
            GIB
        } else {
            cells.iter().sum()
        };
        DomainDef {
            max_memory_kib: initial + devices,
            memory_kib: initial + devices,
            numa_cells_kib: cells.to_vec(),
            hotplug_max_kib: max,
            memory_devices_kib: devices,
            ..DomainDef::default()
        }
    }

    #[test]
    fn totals_cells_and_limits() {
        type Want = Result<Vec<u64>, MemoryError>;
        let table: Vec<(DomainDef, u64, Want)> = vec![
            // No NUMA: only the total changes.
            (vm(&[], None, 0), 2 * GIB, Ok(vec![])),
            // Two equal cells stay equal.
            (
                vm(&[512 * MIB, 512 * MIB], None, 0),
                2 * GIB,
                Ok(vec![GIB, GIB]),
            ),
            // Proportions are kept; the last cell takes what rounding leaves.
            (
                vm(&[GIB, 512 * MIB], None, 0),
                3 * GIB,
                Ok(vec![2 * GIB, GIB]),
            ),
            (
                vm(&[GIB, GIB, GIB], None, 0),
                GIB,
                Ok(vec![341 * MIB, 341 * MIB, 342 * MIB]),
            ),
            // Shrinking works too.
            (
                vm(&[GIB, GIB], None, 0),
                GIB,
                Ok(vec![512 * MIB, 512 * MIB]),
            ),
            // DIMMs are part of the total, not of the cells.
            (vm(&[GIB], Some(8 * GIB), GIB), 4 * GIB, Ok(vec![3 * GIB])),
            // The hot-plug limit is a limit, also exactly.
            (vm(&[GIB], Some(4 * GIB), 0), 4 * GIB, Ok(vec![4 * GIB])),
            (
                vm(&[GIB], Some(4 * GIB), 0),
                4 * GIB + 1,
                Err(MemoryError::AboveHotplugMax {
                    wanted: 4 * GIB + 1,
                    max: 4 * GIB,
                }),
            ),
            (
                vm(&[GIB], Some(8 * GIB), 2 * GIB),
                2 * GIB,
                Err(MemoryError::NotAboveDevices {
                    wanted: 2 * GIB,
                    devices: 2 * GIB,
                }),
            ),
            (
                vm(&[GIB, GIB, GIB], None, 0),
                2 * MIB,
                Err(MemoryError::CellsTooSmall {
                    initial: 2 * MIB,
                    cells: 3,
                }),
            ),
            (vm(&[], None, 0), 0, Err(MemoryError::Zero)),
            (
                vm(&[], None, 0),
                LIBVIRT_MAX_MEMORY_KIB + 1,
                Err(MemoryError::TooLarge(LIBVIRT_MAX_MEMORY_KIB + 1)),
            ),
            (
                vm(&[], None, 0),
                u64::MAX,
                Err(MemoryError::TooLarge(u64::MAX)),
            ),
            // The largest size libvirt takes, shared by two cells without overflow.
            (
                vm(&[GIB, GIB], None, 0),
                LIBVIRT_MAX_MEMORY_KIB,
                Ok(vec![
                    (LIBVIRT_MAX_MEMORY_KIB / 2 + MIB / 2) / MIB * MIB,
                    LIBVIRT_MAX_MEMORY_KIB - (LIBVIRT_MAX_MEMORY_KIB / 2 + MIB / 2) / MIB * MIB,
                ]),
            ),
        ];
        for (before, kib, want) in table {
            let mut def = before.clone();
            let got = set_total(&mut def, kib).map(|_| def.numa_cells_kib.clone());
            assert_eq!(got, want, "{:?} -> {kib}", before.numa_cells_kib);
            match got {
                Ok(_) => {
                    assert_eq!(def.max_memory_kib, kib);
                    assert_eq!(def.memory_kib, kib);
                    assert_eq!(inconsistency(&def), None, "{def:?}");
                }
                Err(_) => assert_eq!(def, before, "a refused change changes nothing"),
            }
        }
    }

    #[test]
    fn inconsistencies_are_named() {
        let mut stale = vm(&[512 * MIB, 512 * MIB], None, 0);
        stale.max_memory_kib = 2 * GIB;
        assert!(inconsistency(&stale)
            .unwrap()
            .contains("NUMA cells add up to 1 GiB"));
        let mut over = vm(&[GIB], Some(2 * GIB), 0);
        over.max_memory_kib = 3 * GIB;
        assert!(inconsistency(&over).unwrap().contains("<maxMemory>"));
        let mut dimms = vm(&[], Some(8 * GIB), GIB);
        dimms.max_memory_kib = GIB;
        assert!(inconsistency(&dimms).unwrap().contains("DIMMs"));
        assert_eq!(inconsistency(&vm(&[GIB], Some(2 * GIB), GIB)), None);
    }
}
