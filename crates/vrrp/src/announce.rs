//! Gratuitous ARP and unsolicited neighbour advertisement frames (being written).
