"""XML of what a VM is made of besides its disk attachments (xmlout.py): NICs, vNIC profiles, and the
``<initialization><configuration>`` that ``all_content=true`` adds (ovirt-api.md §11.1)."""

from __future__ import annotations

from ovirt_fake_engine.model import Nic, Vm
from ovirt_fake_engine.xmlout import API, _a, _el, _ref


def nic(vm: Vm, n: Nic) -> str:
    """``<nic>``: name, interface, MAC, vNIC profile."""
    return (
        f'<nic href="{API}/vms/{_a(vm.id)}/nics/{_a(n.id)}" id="{_a(n.id)}">{_el("name", n.name)}'
        f"{_el('interface', n.interface)}{_el('linked', str(n.linked).lower())}"
        f"<mac>{_el('address', n.mac)}</mac>{_el('plugged', str(n.plugged).lower())}"
        f"<synced>true</synced>"
        f"{_ref('vnic_profile', f'{API}/vnicprofiles/{n.vnic_profile_id}', n.vnic_profile_id)}"
        f"{_ref('vm', f'{API}/vms/{vm.id}', vm.id)}</nic>"
    )


def vnic_profile(profile_id: str, network_id: str, name: str = "ovirtmgmt") -> str:
    """The management network's vNIC profile."""
    return (
        f'<vnic_profile href="{API}/vnicprofiles/{_a(profile_id)}" id="{_a(profile_id)}">{_el("name", name)}'
        f"<pass_through><mode>disabled</mode></pass_through><port_mirroring>false</port_mirroring>"
        f"{_ref('network', f'{API}/networks/{network_id}', network_id)}</vnic_profile>"
    )


def initialization(ovf_text: str) -> str:
    """``<initialization><configuration><type>ovf</type><data>…</data>`` (the OVF as escaped text)."""
    conf = f"<configuration><type>ovf</type>{_el('data', ovf_text)}</configuration>"
    return f"<initialization>{conf}</initialization>"
