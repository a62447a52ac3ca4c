//! Merging an edited [`DomainDef`] back into the libvirt XML it was read from.
//!
//! Only what differs between the old and the new definition is touched; every element and
//! attribute the model does not know stays as it was. Disks are matched by (bus, target),
//! NICs by MAC address, graphics by type. New VMs are generated the same way: a skeleton
//! merged with the wanted definition, so there is one code path to get right.

use crate::domain::{domain_from_tree, Disk, DomainDef, Graphics, Nic, Notes, UVMM_NS};
use crate::xml::{Element, Node};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("disk source kind '{0}' cannot be written (only file, block and volume)")]
    SourceKind(String),
    #[error("invalid volume reference '{0}' (expected POOL/VOLUME)")]
    VolumeRef(String),
}

/// Apply the differences between `old` (read from `tree`) and `new` to `tree`.
pub fn merge(tree: &mut Element, old: &DomainDef, new: &DomainDef) -> Result<(), EditError> {
    if old.domain_type != new.domain_type {
        tree.set_attr("type", new.domain_type.clone());
    }
    if old.title != new.title {
        set_opt_text(tree, "title", new.title.as_deref(), &["name", "uuid"]);
    }
    if old.notes != new.notes {
        merge_notes(tree, &old.notes, &new.notes);
    }
    if old.max_memory_kib != new.max_memory_kib {
        set_memory(tree, "memory", new.max_memory_kib);
    }
    if old.memory_kib != new.memory_kib {
        set_memory(tree, "currentMemory", new.memory_kib);
    }
    if old.vcpus != new.vcpus {
        let vcpu = ensure_child_after(tree, "vcpu", &["currentMemory", "memory"]);
        vcpu.remove_attr("current");
        vcpu.set_text(new.vcpus.to_string());
    }
    if old.bootloader != new.bootloader {
        set_opt_text(tree, "bootloader", new.bootloader.as_deref(), &["vcpu"]);
    }
    if old.bootloader_args != new.bootloader_args {
        set_opt_text(
            tree,
            "bootloader_args",
            new.bootloader_args.as_deref(),
            &["bootloader"],
        );
    }
    merge_os(tree, old, new);
    if old.cpu_model != new.cpu_model {
        merge_cpu(tree, new.cpu_model.as_deref());
    }
    if old.numa_cells_kib != new.numa_cells_kib {
        merge_numa_cells(tree, &new.numa_cells_kib);
    }
    if old.rtc != new.rtc {
        match &new.rtc {
            Some(offset) => {
                ensure_child_after(tree, "clock", &["cpu", "features", "os"])
                    .set_attr("offset", offset.clone());
            }
            None => {
                tree.remove_children(|e| e.name == "clock");
            }
        }
    }
    if old.features != new.features {
        merge_features(tree, old, new);
    }
    if old.disks == new.disks
        && old.nics == new.nics
        && old.graphics == new.graphics
        && old.other_boot == new.other_boot
    {
        return Ok(());
    }
    let domain_type = new.domain_type.clone();
    let devices = ensure_child_after(
        tree,
        "devices",
        &["on_crash", "on_reboot", "on_poweroff", "clock"],
    );
    if old.disks != new.disks {
        merge_disks(devices, &new.disks, &domain_type)?;
    }
    if old.nics != new.nics {
        merge_nics(devices, &new.nics);
    }
    if old.graphics != new.graphics {
        merge_graphics(devices, &new.graphics);
    }
    if old.other_boot != new.other_boot {
        merge_other_boot(devices, &new.other_boot);
    }
    Ok(())
}

/// Set the boot order of the devices uvmm does not model (`<hostdev>`, `<redirdev>`, ...):
/// every such device with a `<boot>` gets the order `wanted` gives it, or loses it.
fn merge_other_boot(devices: &mut Element, wanted: &[crate::domain::DeviceBoot]) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for el in devices.elements_mut() {
        if matches!(el.name.as_str(), "disk" | "interface") {
            continue;
        }
        let index = match counts.iter_mut().find(|(n, _)| *n == el.name) {
            Some((_, c)) => {
                *c += 1;
                *c - 1
            }
            None => {
                counts.push((el.name.clone(), 1));
                0
            }
        };
        let order = wanted
            .iter()
            .find(|b| b.element == el.name && b.index == index)
            .map(|b| b.order);
        if order.is_some() || el.child("boot").is_some() {
            set_boot_order(el, order);
        }
    }
}

/// Write the memory of the NUMA cells, in KiB, keeping every other attribute of a cell
/// (cpus, distances, memAccess, ...). The model never adds or removes cells.
fn merge_numa_cells(tree: &mut Element, cells: &[u64]) {
    let Some(numa) = tree.child_mut("cpu").and_then(|cpu| cpu.child_mut("numa")) else {
        return;
    };
    for (cell, kib) in numa.elements_mut().filter(|e| e.name == "cell").zip(cells) {
        cell.set_attr("memory", kib.to_string());
        cell.set_attr("unit", "KiB");
    }
}

/// Merge `new` into `xml` and return the result as XML text.
pub fn merge_xml(xml: &str, new: &DomainDef) -> Result<String, crate::domain::DomainError> {
    let mut tree = crate::xml::parse_root(xml, "domain")?;
    let old = domain_from_tree(&tree)?;
    merge(&mut tree, &old, new).map_err(|e| crate::domain::DomainError::Invalid {
        field: "devices",
        message: e.to_string(),
    })?;
    Ok(tree.to_xml())
}

fn position_after(parent: &Element, after: &[&str]) -> usize {
    parent
        .children
        .iter()
        .rposition(|n| matches!(n, Node::Element(e) if after.contains(&e.name.as_str())))
        .map(|i| i + 1)
        .unwrap_or(parent.children.len())
}

/// Get a child, creating it after the last of `after` (or at the end) when missing.
fn ensure_child_after<'a>(parent: &'a mut Element, name: &str, after: &[&str]) -> &'a mut Element {
    if parent.child(name).is_none() {
        let pos = position_after(parent, after);
        parent
            .children
            .insert(pos, Node::Element(Element::new(name)));
    }
    parent.child_mut(name).expect("just ensured")
}

fn set_opt_text(parent: &mut Element, name: &str, value: Option<&str>, after: &[&str]) {
    match value {
        Some(v) => ensure_child_after(parent, name, after).set_text(v),
        None => {
            parent.remove_children(|e| e.name == name);
        }
    }
}

fn set_memory(tree: &mut Element, name: &str, kib: u64) {
    let after: &[&str] = if name == "memory" {
        &["uuid", "name"]
    } else {
        &["memory"]
    };
    let el = ensure_child_after(tree, name, after);
    el.attrs.retain(|(k, _)| k != "unit");
    el.set_attr("unit", "KiB");
    el.set_text(kib.to_string());
}

fn merge_notes(tree: &mut Element, old: &Notes, new: &Notes) {
    if old.description != new.description {
        set_opt_text(
            tree,
            "description",
            new.description.as_deref(),
            &["title", "uuid", "name"],
        );
    }
    let meta = ensure_child_after(tree, "metadata", &["description", "title", "uuid", "name"]);
    let existing = meta.elements_mut().find(|e| {
        e.local_name() == "notes"
            && e.attrs
                .iter()
                .any(|(k, v)| k.starts_with("xmlns") && v == UVMM_NS)
    });
    let notes = match existing {
        Some(n) => n,
        None => meta.push_child(Element::new("uvmm:notes").with_attr("xmlns:uvmm", UVMM_NS)),
    };
    let prefix = notes
        .name
        .split_once(':')
        .map(|(p, _)| format!("{p}:"))
        .unwrap_or_default();
    for (local, value) in [
        ("description", &new.description),
        ("contact", &new.contact),
        ("os", &new.os),
    ] {
        let qname = format!("{prefix}{local}");
        match value {
            Some(v) => notes.ensure_child(&qname).set_text(v.clone()),
            None => {
                notes.remove_children(|e| e.name == qname);
            }
        }
    }
}

fn merge_os(tree: &mut Element, old: &DomainDef, new: &DomainDef) {
    let unchanged = old.boot_devices == new.boot_devices
        && old.kernel == new.kernel
        && old.initrd == new.initrd
        && old.cmdline == new.cmdline;
    if unchanged {
        return;
    }
    let os = ensure_child_after(tree, "os", &["bootloader_args", "bootloader", "vcpu"]);
    if old.boot_devices != new.boot_devices {
        os.remove_children(|e| e.name == "boot");
        let pos = position_after(
            os,
            &["type", "loader", "nvram", "kernel", "initrd", "cmdline"],
        );
        let boots = new
            .boot_devices
            .iter()
            .map(|dev| Node::Element(Element::new("boot").with_attr("dev", dev.clone())));
        os.children.splice(pos..pos, boots);
    }
    for (name, old_v, new_v, after) in [
        ("kernel", &old.kernel, &new.kernel, &["loader", "type"][..]),
        ("initrd", &old.initrd, &new.initrd, &["kernel", "type"][..]),
        (
            "cmdline",
            &old.cmdline,
            &new.cmdline,
            &["initrd", "kernel", "type"][..],
        ),
    ] {
        if old_v != new_v {
            set_opt_text(os, name, new_v.as_deref(), after);
        }
    }
}

fn merge_cpu(tree: &mut Element, model: Option<&str>) {
    let Some(model) = model else {
        // Back to the hypervisor's default CPU: only the model goes; topology, NUMA cells
        // and cache settings live in <cpu> too and stay.
        if let Some(cpu) = tree.child_mut("cpu") {
            for attr in ["mode", "match", "check"] {
                cpu.remove_attr(attr);
            }
            cpu.remove_children(|e| matches!(e.name.as_str(), "model" | "vendor" | "feature"));
            if cpu.elements().next().is_none() {
                tree.remove_children(|e| e.name == "cpu");
            }
        }
        return;
    };
    let cpu = ensure_child_after(tree, "cpu", &["features", "os"]);
    match model {
        "host-model" | "host-passthrough" | "maximum" => {
            cpu.set_attr("mode", model);
            cpu.remove_attr("match");
            cpu.remove_children(|e| e.name == "model");
        }
        named => {
            cpu.set_attr("mode", "custom");
            cpu.set_attr("match", "exact");
            match cpu.child_mut("model") {
                Some(m) => m.set_text(named),
                None => {
                    let m = Element::new("model")
                        .with_attr("fallback", "allow")
                        .with_text(named);
                    cpu.children.insert(0, Node::Element(m));
                }
            }
        }
    }
}

fn hyperv_element() -> Element {
    Element::new("hyperv")
        .with_attr("mode", "custom")
        .with_child(Element::new("relaxed").with_attr("state", "on"))
        .with_child(Element::new("vapic").with_attr("state", "on"))
        .with_child(
            Element::new("spinlocks")
                .with_attr("state", "on")
                .with_attr("retries", "8191"),
        )
}

fn merge_features(tree: &mut Element, old: &DomainDef, new: &DomainDef) {
    let f = ensure_child_after(tree, "features", &["os"]);
    let (o, n) = (old.features, new.features);
    for (name, was, want) in [
        ("acpi", o.acpi, n.acpi),
        ("apic", o.apic, n.apic),
        ("pae", o.pae, n.pae),
    ] {
        if was != want {
            if want {
                f.push_child(Element::new(name));
            } else {
                f.remove_children(|e| e.name == name);
            }
        }
    }
    if o.hyperv != n.hyperv {
        f.remove_children(|e| e.name == "hyperv");
        if n.hyperv {
            f.push_child(hyperv_element());
        }
    }
    if f.children
        .iter()
        .all(|c| matches!(c, Node::Text(t) if t.trim().is_empty()))
    {
        tree.remove_children(|e| e.name == "features");
    }
}

// ----- disks -----

fn disk_key_of(el: &Element) -> (String, String) {
    let t = el.child("target");
    (
        t.and_then(|t| t.attr("bus")).unwrap_or("").to_string(),
        t.and_then(|t| t.attr("dev")).unwrap_or("").to_string(),
    )
}

fn disk_key(d: &Disk) -> (String, String) {
    (d.bus.clone().unwrap_or_default(), d.target.clone())
}

fn source_element(d: &Disk) -> Result<Option<Element>, EditError> {
    let Some(src) = &d.source else {
        return Ok(None);
    };
    let el = match d.kind.as_str() {
        "file" => Element::new("source").with_attr("file", src.clone()),
        "block" => Element::new("source").with_attr("dev", src.clone()),
        "volume" => {
            let (pool, vol) = src
                .split_once('/')
                .filter(|(p, v)| !p.is_empty() && !v.is_empty())
                .ok_or_else(|| EditError::VolumeRef(src.clone()))?;
            Element::new("source")
                .with_attr("pool", pool)
                .with_attr("volume", vol)
        }
        other => return Err(EditError::SourceKind(other.to_string())),
    };
    Ok(Some(el))
}

fn driver_wanted(d: &Disk) -> bool {
    d.format.is_some() || d.cache.is_some()
}

fn new_disk_element(d: &Disk, domain_type: &str) -> Result<Element, EditError> {
    let mut el = Element::new("disk")
        .with_attr("type", d.kind.clone())
        .with_attr("device", d.device.clone());
    if driver_wanted(d) {
        let mut drv = Element::new("driver");
        if matches!(domain_type, "qemu" | "kvm" | "xen") {
            drv.set_attr("name", "qemu");
        }
        if let Some(f) = &d.format {
            drv.set_attr("type", f.clone());
        }
        if let Some(c) = &d.cache {
            drv.set_attr("cache", c.clone());
        }
        el.push_child(drv);
    }
    if let Some(src) = source_element(d)? {
        el.push_child(src);
    }
    let mut target = Element::new("target").with_attr("dev", d.target.clone());
    if let Some(bus) = &d.bus {
        target.set_attr("bus", bus.clone());
    }
    el.push_child(target);
    if d.readonly {
        el.push_child(Element::new("readonly"));
    }
    if let Some(o) = d.boot_order {
        el.push_child(Element::new("boot").with_attr("order", o.to_string()));
    }
    Ok(el)
}

fn update_disk_element(
    el: &mut Element,
    old: &Disk,
    new: &Disk,
    domain_type: &str,
) -> Result<(), EditError> {
    if old.device != new.device {
        el.set_attr("device", new.device.clone());
    }
    if old.kind != new.kind || old.source != new.source {
        el.set_attr("type", new.kind.clone());
        let pos = el
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == "source"));
        // The backing chain (live XML) described the old image, not the new one.
        el.remove_children(|e| e.name == "source" || e.name == "backingStore");
        if let Some(src) = source_element(new)? {
            let pos = pos.unwrap_or_else(|| position_after(el, &["driver"]));
            el.children
                .insert(pos.min(el.children.len()), Node::Element(src));
        }
    }
    if (old.format != new.format || old.cache != new.cache)
        && (driver_wanted(new) || el.child("driver").is_some())
    {
        if el.child("driver").is_none() {
            let mut drv = Element::new("driver");
            if matches!(domain_type, "qemu" | "kvm" | "xen") {
                drv.set_attr("name", "qemu");
            }
            el.children.insert(0, Node::Element(drv));
        }
        let drv = el.child_mut("driver").expect("ensured");
        for (attr, v) in [("type", &new.format), ("cache", &new.cache)] {
            match v {
                Some(v) => drv.set_attr(attr, v.clone()),
                None => {
                    drv.remove_attr(attr);
                }
            }
        }
    }
    if old.readonly != new.readonly {
        if new.readonly {
            let pos = position_after(el, &["target", "source"]);
            el.children
                .insert(pos, Node::Element(Element::new("readonly")));
        } else {
            el.remove_children(|e| e.name == "readonly");
        }
    }
    if old.boot_order != new.boot_order {
        set_boot_order(el, new.boot_order);
    }
    Ok(())
}

fn set_boot_order(el: &mut Element, order: Option<u32>) {
    match order {
        Some(o) => match el.child_mut("boot") {
            Some(b) => b.set_attr("order", o.to_string()),
            None => {
                let pos = position_after(el, &["readonly", "target", "source", "model", "mac"]);
                el.children.insert(
                    pos,
                    Node::Element(Element::new("boot").with_attr("order", o.to_string())),
                );
            }
        },
        None => {
            el.remove_children(|e| e.name == "boot");
        }
    }
}

fn is_el(n: &Node, name: &str) -> bool {
    matches!(n, Node::Element(e) if e.name == name)
}

fn merge_disks(devices: &mut Element, wanted: &[Disk], domain_type: &str) -> Result<(), EditError> {
    let old_by_key: Vec<(usize, (String, String), Disk)> = devices
        .children
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n {
            Node::Element(e) if e.name == "disk" => {
                let def = crate::domain::read_disk(e);
                Some((i, disk_key_of(e), def))
            }
            _ => None,
        })
        .collect();
    // Update matching disks in place; mark the others for removal.
    let mut remove = Vec::new();
    for (i, key, old) in &old_by_key {
        match wanted.iter().find(|d| disk_key(d) == *key) {
            Some(new) => {
                if let Node::Element(el) = &mut devices.children[*i] {
                    update_disk_element(el, old, new, domain_type)?;
                }
            }
            None => remove.push(*i),
        }
    }
    for i in remove.into_iter().rev() {
        devices.children.remove(i);
    }
    // Put the kept disks into the wanted order, reusing their slots so that other devices
    // between them stay where they are.
    let slots: Vec<usize> = devices
        .children
        .iter()
        .enumerate()
        .filter(|(_, n)| is_el(n, "disk"))
        .map(|(i, _)| i)
        .collect();
    let mut kept: Vec<Element> = slots
        .iter()
        .map(|i| match &devices.children[*i] {
            Node::Element(e) => e.clone(),
            _ => unreachable!("slots are disk elements"),
        })
        .collect();
    let order: Vec<(String, String)> = wanted.iter().map(disk_key).collect();
    let rank = |e: &Element| {
        order
            .iter()
            .position(|k| *k == disk_key_of(e))
            .unwrap_or(usize::MAX)
    };
    let sorted = kept.windows(2).all(|w| rank(&w[0]) <= rank(&w[1]));
    if !sorted {
        kept.sort_by_key(|e| rank(e));
        for (slot, el) in slots.iter().zip(kept) {
            devices.children[*slot] = Node::Element(el);
        }
    }
    // Append new disks after the last disk (or after the emulator).
    let existing: Vec<(String, String)> = devices
        .elements()
        .filter(|e| e.name == "disk")
        .map(disk_key_of)
        .collect();
    let mut pos = position_after(devices, &["disk"]);
    if !devices.children.iter().any(|n| is_el(n, "disk")) {
        pos = position_after(devices, &["emulator"]);
        if devices.child("emulator").is_none() {
            pos = 0;
        }
    }
    for d in wanted.iter().filter(|d| !existing.contains(&disk_key(d))) {
        // A new disk goes to its place in the wanted order relative to the others.
        let before_next = wanted
            .iter()
            .skip_while(|w| disk_key(w) != disk_key(d))
            .skip(1)
            .find_map(|w| {
                devices
                    .children
                    .iter()
                    .position(|n| matches!(n, Node::Element(e) if e.name == "disk" && disk_key_of(e) == disk_key(w)))
            });
        let at = before_next.unwrap_or(pos);
        devices
            .children
            .insert(at, Node::Element(new_disk_element(d, domain_type)?));
        pos = position_after(devices, &["disk"]);
    }
    Ok(())
}

// ----- NICs -----

fn nic_key_of(el: &Element, index: usize) -> String {
    el.child("mac")
        .and_then(|m| m.attr("address"))
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| format!("#{index}"))
}

fn nic_key(n: &Nic, index: usize) -> String {
    n.mac
        .as_ref()
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| format!("#{index}"))
}

/// Make keys unique by counting repeats: two NICs sharing a MAC (clones often do) are
/// told apart by their order, `mac`, `mac/2`, ...
fn number_repeats(keys: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let n = keys[..i].iter().filter(|x| *x == k).count();
        out.push(if n == 0 {
            k.clone()
        } else {
            format!("{k}/{}", n + 1)
        });
    }
    out
}

fn nic_source(n: &Nic) -> Option<Element> {
    let src = n.source.as_ref()?;
    Some(match n.kind.as_str() {
        "bridge" => Element::new("source").with_attr("bridge", src.clone()),
        "network" => Element::new("source").with_attr("network", src.clone()),
        "direct" => Element::new("source")
            .with_attr("dev", src.clone())
            .with_attr("mode", "bridge"),
        _ => return None,
    })
}

fn new_nic_element(n: &Nic) -> Element {
    let mut el = Element::new("interface").with_attr("type", n.kind.clone());
    if let Some(mac) = &n.mac {
        el.push_child(Element::new("mac").with_attr("address", mac.clone()));
    }
    if let Some(src) = nic_source(n) {
        el.push_child(src);
    }
    if let Some(model) = &n.model {
        el.push_child(Element::new("model").with_attr("type", model.clone()));
    }
    if let Some(o) = n.boot_order {
        el.push_child(Element::new("boot").with_attr("order", o.to_string()));
    }
    el
}

fn update_nic_element(el: &mut Element, old: &Nic, new: &Nic) {
    if old.kind != new.kind || old.source != new.source {
        el.set_attr("type", new.kind.clone());
        let pos = el.children.iter().position(|n| is_el(n, "source"));
        el.remove_children(|e| e.name == "source");
        if let Some(src) = nic_source(new) {
            let pos = pos.unwrap_or_else(|| position_after(el, &["mac"]));
            el.children
                .insert(pos.min(el.children.len()), Node::Element(src));
        }
    }
    if old.model != new.model {
        match &new.model {
            Some(m) => match el.child_mut("model") {
                Some(me) => me.set_attr("type", m.clone()),
                None => {
                    let pos = position_after(el, &["source", "mac"]);
                    el.children.insert(
                        pos,
                        Node::Element(Element::new("model").with_attr("type", m.clone())),
                    );
                }
            },
            None => {
                el.remove_children(|e| e.name == "model");
            }
        }
    }
    if old.boot_order != new.boot_order {
        set_boot_order(el, new.boot_order);
    }
}

fn merge_nics(devices: &mut Element, wanted: &[Nic]) {
    let mut remove = Vec::new();
    let wanted_keys = number_repeats(
        wanted
            .iter()
            .enumerate()
            .map(|(i, n)| nic_key(n, i))
            .collect(),
    );
    let present_keys = number_repeats(
        devices
            .elements()
            .filter(|e| e.name == "interface")
            .enumerate()
            .map(|(i, e)| nic_key_of(e, i))
            .collect(),
    );
    let mut present = present_keys.into_iter();
    let mut seen = Vec::new();
    for (i, node) in devices.children.iter_mut().enumerate() {
        let Node::Element(el) = node else { continue };
        if el.name != "interface" {
            continue;
        }
        let key = present.next().unwrap_or_default();
        match wanted_keys.iter().position(|k| *k == key) {
            Some(w) => {
                let old = crate::domain::read_nic(el);
                update_nic_element(el, &old, &wanted[w]);
                seen.push(key);
            }
            None => remove.push(i),
        }
    }
    for i in remove.into_iter().rev() {
        devices.children.remove(i);
    }
    let mut pos = position_after(devices, &["interface"]);
    if !devices.children.iter().any(|n| is_el(n, "interface")) {
        pos = position_after(devices, &["disk", "emulator"]);
    }
    for (k, n) in wanted_keys.iter().zip(wanted) {
        if !seen.contains(k) {
            devices
                .children
                .insert(pos, Node::Element(new_nic_element(n)));
            pos += 1;
        }
    }
}

// ----- graphics -----

fn new_graphics_element(g: &Graphics) -> Element {
    let mut el = Element::new("graphics").with_attr("type", g.kind.clone());
    match g.port.filter(|_| !g.autoport) {
        Some(p) => el.set_attr("port", p.to_string()),
        None => {
            el.set_attr("port", "-1");
            el.set_attr("autoport", "yes");
        }
    }
    if let Some(l) = &g.listen {
        el.set_attr("listen", l.clone());
    }
    if let Some(k) = &g.keymap {
        el.set_attr("keymap", k.clone());
    }
    el
}

fn update_graphics_element(el: &mut Element, old: &Graphics, new: &Graphics) {
    if old.listen != new.listen {
        match &new.listen {
            Some(l) => {
                el.set_attr("listen", l.clone());
                for child in el.elements_mut().filter(|c| c.name == "listen") {
                    if child.attr("type") == Some("address") {
                        child.set_attr("address", l.clone());
                    }
                }
            }
            None => {
                el.remove_attr("listen");
                el.remove_children(|c| c.name == "listen");
            }
        }
    }
    if old.keymap != new.keymap {
        match &new.keymap {
            Some(k) => el.set_attr("keymap", k.clone()),
            None => {
                el.remove_attr("keymap");
            }
        }
    }
    if old.autoport != new.autoport || (!new.autoport && old.port != new.port) {
        if new.autoport {
            el.set_attr("autoport", "yes");
            el.set_attr("port", "-1");
        } else {
            el.set_attr("autoport", "no");
            if let Some(p) = new.port {
                el.set_attr("port", p.to_string());
            }
        }
    }
}

fn merge_graphics(devices: &mut Element, wanted: &[Graphics]) {
    let mut seen = Vec::new();
    let mut remove = Vec::new();
    for (i, node) in devices.children.iter_mut().enumerate() {
        let Node::Element(el) = node else { continue };
        if el.name != "graphics" {
            continue;
        }
        let kind = el.attr("type").unwrap_or("").to_string();
        match wanted.iter().find(|g| g.kind == kind) {
            Some(new) if !seen.contains(&kind) => {
                let old = crate::domain::read_graphics(el);
                update_graphics_element(el, &old, new);
                seen.push(kind);
            }
            _ => remove.push(i),
        }
    }
    for i in remove.into_iter().rev() {
        devices.children.remove(i);
    }
    let pos = position_after(
        devices,
        &["graphics", "input", "interface", "disk", "emulator"],
    );
    let added: Vec<Node> = wanted
        .iter()
        .filter(|g| !seen.contains(&g.kind))
        .map(|g| Node::Element(new_graphics_element(g)))
        .collect();
    devices.children.splice(pos..pos, added);
}

/// Rename disk targets (`(old, new)` pairs, applied simultaneously), keeping every other
/// part of each disk element with its disk.
pub fn retarget_disks(tree: &mut Element, renames: &[(String, String)]) {
    let Some(devices) = tree.child_mut("devices") else {
        return;
    };
    for disk in devices.elements_mut().filter(|e| e.name == "disk") {
        if let Some(t) = disk.child_mut("target") {
            let current = t.attr("dev").unwrap_or("").to_string();
            if let Some((_, new)) = renames.iter().find(|(old, _)| *old == current) {
                t.set_attr("dev", new.clone());
            }
        }
    }
}

/// Set (or clear) the VNC/SPICE password on the graphics element of `kind`.
pub fn set_graphics_password(tree: &mut Element, kind: &str, password: Option<&str>) -> bool {
    let Some(devices) = tree.child_mut("devices") else {
        return false;
    };
    let mut found = false;
    for g in devices
        .elements_mut()
        .filter(|e| e.name == "graphics" && e.attr("type") == Some(kind))
    {
        found = true;
        match password {
            Some(p) => g.set_attr("passwd", p),
            None => {
                g.remove_attr("passwd");
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_domain;
    use crate::xml::parse;

    const BASE: &str = r#"<domain type='kvm'>
  <name>vm1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='MiB'>1024</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/a.qcow2'><seclabel model='dac' relabel='no'/></source>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <controller type='usb' index='0'/>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:01'/>
      <source bridge='br0'/>
      <model type='virtio'/>
      <bandwidth><inbound average='1000'/></bandwidth>
    </interface>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    <hostdev mode='subsystem' type='usb'/>
  </devices>
  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-x'/></qemu:commandline>
</domain>"#;

    fn edit(f: impl FnOnce(&mut DomainDef)) -> (Element, Element) {
        let before = parse(BASE).unwrap();
        let old = domain_from_tree(&before).unwrap();
        let mut new = old.clone();
        f(&mut new);
        let mut after = before.clone();
        merge(&mut after, &old, &new).unwrap();
        // Whatever was merged must read back as what was wanted.
        let reread = domain_from_tree(&after).unwrap();
        assert_eq!(
            reread.disks,
            new.disks
                .iter()
                .map(|d| Disk { ..d.clone() })
                .collect::<Vec<_>>()
        );
        assert_eq!(reread.nics, new.nics);
        assert_eq!(reread.notes, new.notes);
        (before, after)
    }

    #[test]
    fn no_change_is_a_no_op() {
        let (before, after) = edit(|_| {});
        assert_eq!(before, after);
    }

    #[test]
    fn memory_edit_touches_only_memory() {
        let (mut before, mut after) = edit(|d| d.max_memory_kib = 2 * 1024 * 1024);
        assert_eq!(after.child("memory").unwrap().text(), "2097152");
        assert_eq!(after.child("memory").unwrap().attr("unit"), Some("KiB"));
        before.remove_children(|e| e.name == "memory");
        after.remove_children(|e| e.name == "memory");
        assert_eq!(before, after);
    }

    #[test]
    fn disk_edits_keep_unknown_children() {
        let (_, after) = edit(|d| {
            d.disks[0].cache = Some("none".into());
            d.disks[1].source = Some("/iso/debian.iso".into());
        });
        let xml = after.to_xml();
        assert!(xml.contains("<address type=\"pci\""), "{xml}");
        assert!(xml.contains("cache=\"none\""));
        assert!(xml.contains("<source file=\"/iso/debian.iso\"/>"));
        assert!(xml.contains("<qemu:commandline"));
        assert!(xml.contains("<hostdev"));
        // Ejecting again removes the source but keeps the drive.
        let mut tree = after.clone();
        let old = domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        new.disks[1].source = None;
        merge(&mut tree, &old, &new).unwrap();
        assert_eq!(domain_from_tree(&tree).unwrap().disks[1].source, None);
        assert_eq!(domain_from_tree(&tree).unwrap().disks.len(), 2);
    }

    #[test]
    fn disks_are_added_removed_and_reordered() {
        let (_, after) = edit(|d| {
            let mut extra = d.disks[0].clone();
            extra.target = "vdb".into();
            extra.source = Some("/img/b.qcow2".into());
            d.disks.push(extra);
        });
        let disks = domain_from_tree(&after).unwrap().disks;
        assert_eq!(
            disks.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(),
            ["vda", "sda", "vdb"]
        );
        // Move the CD-ROM first: the controller between the disks stays in its place.
        let (_, after) = edit(|d| d.disks.swap(0, 1));
        let devs: Vec<String> = after
            .child("devices")
            .unwrap()
            .elements()
            .map(|e| match e.name.as_str() {
                "disk" => disk_key_of(e).1,
                other => other.to_string(),
            })
            .collect();
        assert_eq!(
            devs,
            [
                "emulator",
                "sda",
                "controller",
                "vda",
                "interface",
                "graphics",
                "hostdev"
            ]
        );
        let (_, after) = edit(|d| {
            d.disks.remove(1);
        });
        assert_eq!(domain_from_tree(&after).unwrap().disks.len(), 1);
        assert!(after.to_xml().contains("<controller"));
    }

    #[test]
    fn nic_graphics_and_notes() {
        let (_, after) = edit(|d| {
            d.nics[0].source = Some("br1".into());
            d.nics.push(Nic {
                kind: "network".into(),
                source: Some("default".into()),
                mac: Some("52:54:00:00:00:02".into()),
                model: Some("e1000".into()),
                ..Nic::default()
            });
            d.graphics[0].keymap = Some("de".into());
            d.notes.description = Some("</description><evil/> & more".into());
            d.notes.contact = Some("ops".into());
        });
        let xml = after.to_xml();
        assert!(xml.contains("<bandwidth>"), "unknown NIC children are kept");
        let def = parse_domain(&xml).unwrap();
        assert_eq!(def.nics[0].source.as_deref(), Some("br1"));
        assert_eq!(def.nics[1].model.as_deref(), Some("e1000"));
        assert_eq!(def.graphics[0].keymap.as_deref(), Some("de"));
        assert_eq!(
            def.notes.description.as_deref(),
            Some("</description><evil/> & more")
        );
        assert!(!xml.contains("<evil/>"), "notes must be escaped");
        let (_, after) = edit(|d| {
            d.graphics.clear();
            d.nics.clear();
        });
        let def = domain_from_tree(&after).unwrap();
        assert!(def.graphics.is_empty() && def.nics.is_empty());
    }

    #[test]
    fn features_cpu_clock_boot() {
        let (_, after) = edit(|d| {
            d.features.hyperv = true;
            d.features.apic = false;
            d.cpu_model = Some("host-model".into());
            d.rtc = Some("localtime".into());
            d.boot_devices = vec!["cdrom".into(), "hd".into()];
        });
        let def = domain_from_tree(&after).unwrap();
        assert_eq!(
            def.features,
            crate::domain::Features {
                acpi: true,
                apic: false,
                pae: false,
                hyperv: true
            },
            "{}",
            after.to_xml()
        );
        assert_eq!(def.cpu_model.as_deref(), Some("host-model"));
        assert_eq!(def.rtc.as_deref(), Some("localtime"));
        assert_eq!(def.boot_devices, ["cdrom", "hd"]);
        let (_, after) = edit(|d| d.cpu_model = Some("Haswell".into()));
        assert_eq!(
            domain_from_tree(&after).unwrap().cpu_model.as_deref(),
            Some("Haswell")
        );
    }

    const CLONE: &str = r#"<domain type='kvm'>
  <name>clone</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa1</uuid>
  <memory unit='KiB'>2097152</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <cpu mode='host-model'>
    <topology sockets='1' dies='1' cores='2' threads='1'/>
    <numa>
      <cell id='0' cpus='0' memory='1048576' unit='KiB' memAccess='shared'/>
      <cell id='1' cpus='1' memory='1024' unit='MiB'/>
    </numa>
  </cpu>
  <devices>
    <disk type='file' device='disk'>
      <source file='/img/a.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <boot order='2'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:00:00:01'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:01'/>
      <source bridge='br0'/>
      <model type='e1000'/>
      <boot order='3'/>
    </interface>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0x5678'/></source><boot order='4'/></hostdev>
    <redirdev bus='usb' type='spicevmc'><boot order='1'/></redirdev>
    <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source></hostdev>
  </devices>
</domain>"#;

    fn edit_xml(xml: &str, f: impl FnOnce(&mut DomainDef)) -> (DomainDef, Element) {
        let mut tree = parse(xml).unwrap();
        let old = domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        f(&mut new);
        merge(&mut tree, &old, &new).unwrap();
        let reread = domain_from_tree(&parse(&tree.to_xml()).unwrap()).unwrap();
        assert_eq!(reread, new, "what was merged reads back as what was wanted");
        (reread, tree)
    }

    #[test]
    fn nics_sharing_a_mac_are_told_apart_by_order() {
        let (def, tree) = edit_xml(CLONE, |d| {
            d.nics[1].source = Some("br1".into());
            d.nics[1].boot_order = None;
        });
        assert_eq!(def.nics[0].source.as_deref(), Some("default"));
        assert_eq!(def.nics[0].model.as_deref(), Some("virtio"));
        assert_eq!(def.nics[1].source.as_deref(), Some("br1"));
        assert_eq!(def.nics[1].model.as_deref(), Some("e1000"));
        assert_eq!(tree.to_xml().matches("<interface").count(), 2);
        // Removing the second of the two keeps the first.
        let (def, _) = edit_xml(CLONE, |d| {
            d.nics.remove(1);
        });
        assert_eq!(def.nics.len(), 1);
        assert_eq!(def.nics[0].source.as_deref(), Some("default"));
    }

    #[test]
    fn boot_orders_of_unmodelled_devices_are_written() {
        let (def, tree) = edit_xml(CLONE, |d| {
            crate::boot::set_boot_medium(d, "sda", false).unwrap();
        });
        assert_eq!(
            def.boot_order(),
            [
                "sda",
                "redirdev#1",
                "vda",
                "nic:52:54:00:00:00:01",
                "hostdev#1"
            ]
        );
        let xml = tree.to_xml();
        // The devices keep everything else, and the PCI device still has no order.
        assert!(xml.contains("<product id=\"0x5678\"/>"), "{xml}");
        assert_eq!(xml.matches("<boot order").count(), 5, "{xml}");
        // A boot device list replaces every per-device order.
        let (def, tree) = edit_xml(CLONE, |d| {
            d.boot_devices = vec!["hd".into()];
            d.disks[0].boot_order = None;
            d.nics[1].boot_order = None;
            d.other_boot.clear();
        });
        assert_eq!(def.boot_order(), ["hd"]);
        assert!(!tree.to_xml().contains("<boot order"));
    }

    #[test]
    fn numa_cells_follow_memory_and_survive_cpu_model_changes() {
        let (def, tree) = edit_xml(CLONE, |d| crate::memory::set_total(d, 3 << 20).unwrap());
        assert_eq!(def.numa_cells_kib, [1536 << 10, 1536 << 10]);
        let xml = tree.to_xml();
        assert!(xml.contains("memAccess=\"shared\""), "{xml}");
        assert!(
            xml.contains("<memory unit=\"KiB\">3145728</memory>"),
            "{xml}"
        );
        // The hypervisor's default CPU: the model goes, topology and NUMA cells stay.
        let (def, tree) = edit_xml(CLONE, |d| d.cpu_model = None);
        assert_eq!(def.numa_cells_kib.len(), 2);
        let cpu = tree.child("cpu").unwrap();
        assert_eq!(cpu.attr("mode"), None);
        assert!(cpu.child("topology").is_some());
        // Without anything else in <cpu>, the element goes.
        let (_, after) = edit(|d| d.cpu_model = Some("Haswell".into()));
        let mut tree = after;
        let old = domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        new.cpu_model = None;
        merge(&mut tree, &old, &new).unwrap();
        assert!(tree.child("cpu").is_none());
    }

    #[test]
    fn domain_type_changes() {
        let (def, tree) = edit_xml(CLONE, |d| d.domain_type = "qemu".into());
        assert_eq!(def.domain_type, "qemu");
        assert_eq!(tree.attr("type"), Some("qemu"));
    }

    #[test]
    fn inserting_and_ejecting_media_restores_the_drive() {
        // An empty drive without <driver>: insert, eject, and it is as it was.
        let before = parse(CLONE).unwrap();
        let (_, inserted) = edit_xml(CLONE, |d| d.disks[1].source = Some("/iso/a.iso".into()));
        let cd = inserted
            .find("devices")
            .unwrap()
            .elements()
            .nth(1)
            .unwrap()
            .clone();
        assert!(cd.child("driver").is_none(), "{}", cd.to_xml());
        let mut tree = inserted;
        let old = domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        new.disks[1].source = None;
        merge(&mut tree, &old, &new).unwrap();
        assert_eq!(tree, before);
        // A live drive's backing chain belongs to the old image and goes with it.
        let live = CLONE.replace(
            "<target dev='sda' bus='sata'/>",
            "<source file='/iso/old.iso' index='2'/><backingStore/><target dev='sda' bus='sata'/>",
        );
        let (_, tree) = edit_xml(&live, |d| d.disks[1].source = Some("/iso/new.iso".into()));
        let xml = tree.to_xml();
        assert!(
            xml.contains("/iso/new.iso") && !xml.contains("backingStore"),
            "{xml}"
        );
    }

    #[test]
    fn password_is_set_on_graphics() {
        let mut tree = parse(BASE).unwrap();
        assert!(set_graphics_password(&mut tree, "vnc", Some("s3cret\"<")));
        let def = domain_from_tree(&parse(&tree.to_xml()).unwrap()).unwrap();
        assert!(def.graphics[0].password_set);
        assert!(!set_graphics_password(&mut tree, "spice", Some("x")));
    }
}
