//! Test fixture `open-socket`: Tries to connect to a TCP port on the host.

flowmesh_guest_support::fixture! {
    name: "open-socket",
    description: "Tries to connect to a TCP port on the host.",
    spec: {
        /// The TCP port to try.
        port: u16,
    },
    output: String,
    execute: |spec| {
        let address = format!("127.0.0.1:{}", spec.port);
        match std::net::TcpStream::connect(&address) {
            Ok(_) => Ok(format!("connected to {address}")),
            Err(error) => Err(TaskError::failed(format!("connect {address}: {error}"))),
        }
    }
}
