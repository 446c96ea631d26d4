//! The console's sessions and forms over real HTTP, as a hostile site or
//! tenant would try them: the cookie's flags, CSRF and cross-site checks on
//! every form that changes something, revoked tokens, worker tokens, and
//! another tenant's tasks. Outcomes only, never timings.

use flowmesh_tests::cluster::{Db, TestServer};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};

flowmesh_tests::on_both_backends!(
    forms_that_change_state_need_the_sessions_csrf_token_and_a_same_site_request,
    a_revoked_token_ends_its_sessions_and_a_worker_token_cannot_sign_in,
    a_tenant_cannot_see_cancel_or_follow_another_tenants_tasks,
    every_page_answers_a_user_and_an_admin,
    only_an_admin_removes_a_plugin_from_the_console,
);

mod pages {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_cookie_is_http_only_and_strict_and_pages_refuse_framing() {
        super::the_cookie_is_http_only_and_strict_and_pages_refuse_framing().await
    }
}

const NEEDS_GPU: &str = include_str!("../../examples/tasks/needs-gpu.json");

/// A browser-like client: no redirects followed, the session cookie sent.
struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

/// `fields` as an `application/x-www-form-urlencoded` body.
fn form(request: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in with `token`: the sign-in answer and the session, if one opened.
async fn sign_in(base: &str, token: &str) -> (reqwest::Response, Option<Session>) {
    let http = client();
    let response = form(
        http.post(format!("{base}/sign-in")),
        &[("token", token), ("next", "/tasks")],
    )
    .send()
    .await
    .expect("sign-in answers");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::to_string);
    let session = cookie.map(|cookie| Session {
        http: http.clone(),
        base: base.to_string(),
        cookie,
    });
    (response, session)
}

impl Session {
    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("accept", "text/html")
            .send()
            .await
            .expect("the page answers");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    /// The CSRF token the page at `path` carries in its forms.
    async fn csrf(&self, path: &str) -> String {
        let (_, _, html) = self.get(path).await;
        let at = html
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF field")
            + 19;
        html[at..at + 64].to_string()
    }

    async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> StatusCode {
        let mut request = form(
            self.http
                .post(format!("{}{path}", self.base))
                .header("cookie", &self.cookie),
            fields,
        );
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).expect("a header"));
        }
        request.send().await.expect("the form answers").status()
    }
}

async fn forms_that_change_state_need_the_sessions_csrf_token_and_a_same_site_request(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let admin = server.admin();
    let id = admin.submit(NEEDS_GPU).await;
    let (_, session) = sign_in(&server.url, &server.admin).await;
    let session = session.expect("a session");
    let page = format!("/tasks/{id}");
    let cancel = format!("/tasks/{id}/cancel");
    let csrf = session.csrf(&page).await;

    let status = session.post(&cancel, &[], &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no CSRF field");
    let status = session
        .post(&cancel, &[("csrf", "0".repeat(64).as_str())], &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let status = session
        .post(
            &cancel,
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a cross-site request with the right token"
    );
    let host = server.url.trim_start_matches("http://");
    let status = session
        .post(
            &cancel,
            &[("csrf", &csrf)],
            &[("origin", "http://evil.example"), ("host", host)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another origin");
    assert_eq!(
        admin.task(&id).await["state"],
        "pending",
        "nothing was cancelled"
    );

    let status = session
        .post(
            &cancel,
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(admin.task(&id).await["state"], "cancelled");

    // Signing out needs the token too; then the session is gone.
    assert_eq!(
        session.post("/sign-out", &[("csrf", "x")], &[]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        session.post("/sign-out", &[("csrf", &csrf)], &[]).await,
        StatusCode::SEE_OTHER
    );
    let (status, headers, _) = session.get("/tasks").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers["location"]
            .to_str()
            .unwrap_or_default()
            .starts_with("/sign-in")
    );
}

async fn a_revoked_token_ends_its_sessions_and_a_worker_token_cannot_sign_in(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let (response, session) = sign_in(&server.url, &server.worker_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(session.is_none(), "no session for a worker token");
    let (response, session) = sign_in(&server.url, "made-up").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(session.is_none());

    let admin = server.admin();
    let (status, created) = admin
        .post(
            "/tokens",
            serde_json::json!({"tenant": "acme", "role": "user"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().expect("a token");
    let token_id = created["id"].as_str().expect("an id");
    let (_, session) = sign_in(&server.url, token).await;
    let session = session.expect("a session");
    assert_eq!(session.get("/tasks").await.0, StatusCode::OK);

    let (status, _) = admin.delete(&format!("/tokens/{token_id}")).await;
    assert!(status.is_success(), "{status}");
    flowmesh_tests::cluster::eventually(
        "the session ends",
        std::time::Duration::from_secs(10),
        || async {
            let (status, _, _) = session.get("/tasks").await;
            (status == StatusCode::SEE_OTHER)
                .then_some(())
                .ok_or(status)
        },
    )
    .await;
}

async fn a_tenant_cannot_see_cancel_or_follow_another_tenants_tasks(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let tenant_a = server.user("tenant-a").await;
    let id = tenant_a.submit(NEEDS_GPU).await;
    let tenant_b = server.user("tenant-b").await;
    let (_, session) = sign_in(&server.url, tenant_b.token()).await;
    let session = session.expect("a session");
    let csrf = session.csrf("/submit").await;

    let (status, _, html) = session.get(&format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (missing_status, _, missing) = session.get("/tasks/no-such-task").await;
    assert_eq!(missing_status, StatusCode::NOT_FOUND);
    assert_eq!(
        html.replace(&id, "ID"),
        missing.replace("no-such-task", "ID"),
        "another tenant's task reads exactly as a missing one"
    );
    assert_eq!(
        session
            .post(&format!("/tasks/{id}/cancel"), &[("csrf", &csrf)], &[])
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        session.get(&format!("/tasks/{id}/events")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, _, list) = session.get("/tasks").await;
    assert!(!list.contains(&id), "tenant B's list does not show it");
    assert_eq!(tenant_a.task(&id).await["state"], "pending");

    // The overview's waiting list names tasks: an admin's names A's task,
    // B's never does.
    tenant_a
        .until(&id, std::time::Duration::from_secs(30), |task| {
            !task["waiting"].is_null()
        })
        .await;
    let (_, admin) = sign_in(&server.url, &server.admin).await;
    let (_, _, everyone) = admin.expect("a session").get("/").await;
    assert!(
        everyone.contains("needs-a-gpu"),
        "the admin's overview lists it"
    );
    let (_, _, own) = session.get("/").await;
    assert!(
        !own.contains("needs-a-gpu") && !own.contains(&id),
        "tenant B's overview does not"
    );
}

async fn the_cookie_is_http_only_and_strict_and_pages_refuse_framing() {
    let server = TestServer::start(Db::Sqlite, |_| {}).await;
    let (response, session) = sign_in(&server.url, &server.admin).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains(&server.admin),
        "the cookie is not the token"
    );
    assert_eq!(response.headers()["location"], "/tasks");
    let session = session.expect("a session");

    let (status, headers, html) = session.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap_or_default()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        headers["server-timing"]
            .to_str()
            .unwrap_or_default()
            .starts_with("app;dur=")
    );
    assert!(
        !html.contains(&server.admin),
        "the token never appears in a page"
    );

    let at = html
        .find("/assets/console.js?v=")
        .expect("the script is linked");
    let end = html[at..].find('"').expect("the link ends") + at;
    let (status, headers, script) = session.get(&html[at..end]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("immutable")
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/javascript")
    );
    assert!(script.contains("EventSource"));
    assert!(
        !script.contains("http://") && !script.contains("https://"),
        "nothing is fetched from elsewhere"
    );

    // A next= that leaves the console is ignored.
    let response = form(
        client().post(format!("{}/sign-in", server.url)),
        &[
            ("token", server.admin.as_str()),
            ("next", "//evil.example/"),
        ],
    )
    .send()
    .await
    .expect("sign-in answers");
    assert_eq!(response.headers()["location"], "/");

    // A browser gets an HTML not-found page outside the API, JSON inside.
    let (status, headers, _) = session.get("/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let (status, headers, _) = session.get("/api/v1/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json")
    );
}

async fn every_page_answers_a_user_and_an_admin(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let _worker = server.echo_worker("pages-worker", 1).await;
    let admin = server.admin();
    let task = admin.echo("pages").await;
    admin
        .finished(&task, std::time::Duration::from_secs(30))
        .await;
    let (status, body) = admin
        .submit_raw(
            "",
            include_str!("../../examples/workflows/hello-pipeline.yaml"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let workflow = body["id"].as_str().expect("an id").to_string();
    let user = server.user("default").await;

    let pages = [
        "/".to_string(),
        "/tasks".into(),
        "/tasks?state=succeeded&type=echo&label=team%3Dml&name=pa".into(),
        format!("/tasks/{task}"),
        "/workflows".into(),
        "/workflows?state=running".into(),
        format!("/workflows/{workflow}"),
        "/workers".into(),
        "/plugins".into(),
        "/plugins/echo".into(),
        "/submit".into(),
    ];
    for token in [server.admin.as_str(), user.token()] {
        let (_, session) = sign_in(&server.url, token).await;
        let session = session.expect("a session");
        for page in &pages {
            let (status, _, html) = session.get(page).await;
            assert_eq!(status, StatusCode::OK, "{page}: {html}");
            assert!(html.starts_with("<!DOCTYPE html>"), "{page}");
        }
        let (status, _, _) = session.get("/tokens").await;
        let expected = if token == server.admin {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "/tokens");
        for bad in [
            "/tasks?state=sleepy",
            "/tasks?label=nokey",
            "/workflows?state=done",
        ] {
            let (status, _, html) = session.get(bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                html.contains("failure-message"),
                "{bad}: an error page that says why"
            );
        }
    }
}

async fn only_an_admin_removes_a_plugin_from_the_console(db: Db) {
    let server = TestServer::start(db, |_| {}).await;
    let user = server.user("default").await;
    let (_, session) = sign_in(&server.url, user.token()).await;
    let session = session.expect("a session");
    let csrf = session.csrf("/plugins/echo").await;
    assert_eq!(
        session
            .post("/plugins/echo/remove", &[("csrf", &csrf)], &[])
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.admin().get("/plugins/echo").await.0,
        StatusCode::OK,
        "still installed"
    );

    let (_, admin) = sign_in(&server.url, &server.admin).await;
    let admin = admin.expect("a session");
    let csrf = admin.csrf("/plugins/echo").await;
    assert_eq!(
        admin
            .post("/plugins/echo/remove", &[("csrf", &csrf)], &[])
            .await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        server.admin().get("/plugins/echo").await.0,
        StatusCode::NOT_FOUND
    );
}
