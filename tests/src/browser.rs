//! A real headless Chromium, driven over WebDriver, for the console's tests.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port
//! (installing `chromium` and `chromium-driver` with `scripts/chromium.sh`
//! when they are missing) and opens a headless session through it. Nothing
//! is downloaded at run time. Screenshots go to
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a page gets to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver process and one browser session through it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// The console's base URL.
    pub base: String,
    _driver: tokio::process::Child,
}

/// The chromedriver's path, installing Chromium once per test process (the
/// tests of a binary start browsers concurrently).
fn driver_path() -> String {
    static DRIVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DRIVER.get_or_init(install_driver).clone()
}

fn install_driver() -> String {
    let installer = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/chromium.sh");
    let output = std::process::Command::new(installer)
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/chromium.sh runs");
    assert!(
        output.status.success(),
        "chromium and chromium-driver are needed for the console tests and could not be installed; run scripts/chromium.sh"
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Where screenshots are saved.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("console-screenshots")
}

impl Browser {
    /// A headless browser (`width` × `height` window) for the console at
    /// `base`.
    pub async fn start(base: &str, width: u32, height: u32) -> Self {
        let driver = driver_path();
        let port = crate::processes::free_port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--lang=en-US",
                format!("--window-size={width},{height}")
            ]}),
        );
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        base: base.trim_end_matches('/').to_string(),
                        _driver: child,
                    };
                }
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no WebDriver session through {driver}: {last_error}");
    }

    /// Opens `path` of the console.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("the page opens");
    }

    /// Signs in with `token` and lands on the overview.
    pub async fn sign_in(&self, token: &str) {
        self.open("/sign-in").await;
        self.fill("#token", token).await;
        self.click("form[action='/sign-in'] button[type=submit]")
            .await;
        self.text_eventually("h1", |text| text == "Overview").await;
    }

    /// The element `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css} on the page: {error}"))
    }

    /// Types `text` into the empty field `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("the field clears");
        field.send_keys(text).await.expect("typing works");
    }

    /// Sets the value of field `css` at once (long multi-line text).
    pub async fn set_value(&self, css: &str, text: &str) {
        self.client
            .execute(
                "document.querySelector(arguments[0]).value = arguments[1];",
                vec![json!(css), json!(text)],
            )
            .await
            .expect("the script runs");
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("the click lands");
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("the script runs")
    }

    /// The text of `css` once `accept` holds for it.
    pub async fn text_eventually(&self, css: &str, accept: impl Fn(&str) -> bool) -> String {
        self.eventually(
            css,
            &format!("document.querySelector({css:?})?.textContent ?? null"),
            |value| {
                value
                    .as_str()
                    .filter(|text| accept(text.trim()))
                    .map(|text| text.trim().to_string())
            },
        )
        .await
    }

    /// Waits until the badge `css` shows `state` (its `data-state`).
    pub async fn state_eventually(&self, css: &str, state: &str) {
        self.eventually(
            css,
            &format!("document.querySelector({css:?})?.dataset.state ?? null"),
            |shown| (shown == state).then_some(()),
        )
        .await
    }

    /// The value of `script` once `accept` maps it to something.
    pub async fn eventually<T>(
        &self,
        what: &str,
        script: &str,
        accept: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self
                .client
                .execute(&format!("return {script};"), Vec::new())
                .await
                .unwrap_or(Value::Null);
            if let Some(accepted) = accept(&value) {
                return accepted;
            }
            if tokio::time::Instant::now() > deadline {
                let last = value;
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|url| url.to_string())
                    .unwrap_or_default();
                panic!("{what} never became as expected on {url}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Saves a screenshot as `target/console-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot saves");
        path
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
