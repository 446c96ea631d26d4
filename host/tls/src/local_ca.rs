//! The local CA of `--tls-self-signed`: made once in the data directory
//! (`tls/ca.pem`, `tls/ca.key`, the key readable by its owner only), it signs
//! the server's certificate for the names it serves. Clients pin `ca.pem`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TlsError;

/// A CA kept in a directory.
pub struct LocalCa {
    /// `ca.pem`, what clients pin.
    pub cert_path: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl LocalCa {
    /// Opens the CA in `dir`, making it first if it is not there.
    pub fn open_or_create(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if cert_path.is_file() && key_path.is_file() {
            let cert_pem = read_text(&cert_path)?;
            let key_pem = read_text(&key_path)?;
            let key = KeyPair::from_pem(&key_pem)?;
            return Ok(Self {
                cert_path,
                cert_pem,
                key,
            });
        }
        create_private_dir(dir)?;
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        write_file(&cert_path, cert.pem().as_bytes(), false)?;
        Ok(Self {
            cert_path,
            cert_pem: cert.pem(),
            key,
        })
    }

    /// A fresh server certificate for `names`, signed by this CA: the chain
    /// (leaf, CA) and the leaf's key.
    pub fn server_certificate(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        // The CA's name and key make the issuer its certificate names.
        let issuer = Issuer::new(ca_params(), &self.key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(name.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "FlowMesh server");
        params.distinguished_name = subject;
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2044, 1, 1);
        let leaf = params.signed_by(&key, &issuer)?;
        let ca = CertificateDer::from(pem_der(&self.cert_pem)?);
        Ok((
            vec![leaf.der().clone(), ca],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

/// What the CA's certificate says: always the same, so the issuer of a
/// server certificate can be made again from the key alone.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "FlowMesh local CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    params
}

/// The DER of the first certificate in `pem`.
fn pem_der(pem: &str) -> Result<Vec<u8>, rcgen::Error> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|_| rcgen::Error::CouldNotParseCertificate)
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|error| TlsError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    flowmesh_types::private_fs::create_private_dir(dir).map_err(|error| TlsError::Io {
        path: dir.to_path_buf(),
        error,
    })
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let io = |error| TlsError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}
