//! The XML-interface client (feature `client`) against a fake cash server on
//! 127.0.0.1 that behaves as the real one is documented to:
//! HTTP Basic (401 otherwise), the body read only when it is sent as XML (a
//! form body is read as empty and answered `Query Parse Error`), the outcome
//! in the `Status` of `<RK7QueryResult>` with HTTP 200, and, on request, a
//! server that does not answer at all.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rk7::xmlapi::{
    self, Client, Error, OrderKey, OrderListQuery, RefDataQuery, RefItem, Request, Status,
};
use rk7::{Kopecks, Thousandths};
use secrecy::SecretString;

use crate::{dt, guid};

const USER: &str = "Кассир";
const PASSWORD: &str = "пароль&1";
const ORDER_GUID: &str = "{763C7F09-875A-438A-B6CB-25F7D3F74741}";

/// What the fake cash server knows and what it was sent.
#[derive(Default)]
struct Fake {
    /// Version of the order table, for `lastversion`.
    version: AtomicI64,
    /// Every request fails with UCSERR(2172), as while the shift closes.
    closing_shift: AtomicBool,
    /// Requests are never answered.
    hang: AtomicBool,
    /// `(Content-Type, body)` of every authorised request.
    seen: Mutex<Vec<(String, String)>>,
    /// `User-Agent` of every authorised request.
    agents: Mutex<Vec<String>>,
}

/// A running fake server and a client of it.
struct Server {
    fake: Arc<Fake>,
    base: String,
}

impl Server {
    async fn start() -> Self {
        let fake = Arc::new(Fake {
            version: AtomicI64::new(100),
            ..Fake::default()
        });
        let app = Router::new()
            .route(xmlapi::PATH, post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            fake,
            base: format!("http://{addr}"),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.base, USER, SecretString::from(PASSWORD)).unwrap()
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.fake.seen.lock().unwrap().clone()
    }
}

async fn handle(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Basic {}", base64(&format!("{USER}:{PASSWORD}")))) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"rk7\"")],
            "Unauthorized",
        )
            .into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // The cash server reads the body only when it is XML; a form is empty.
    let xml = content_type.starts_with("application/xml") || content_type.starts_with("text/xml");
    let query = if xml {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        String::new()
    };
    fake.seen
        .lock()
        .unwrap()
        .push((content_type, query.clone()));
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    fake.agents.lock().unwrap().push(agent.to_owned());
    if fake.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let answer = answer(&fake, &query);
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], answer).into_response()
}

/// The answer to a query, always with HTTP 200.
fn answer(fake: &Fake, query: &str) -> String {
    let Some(cmd) = attr(query, "CMD").filter(|_| query.contains("<RK7Query>")) else {
        return result("Query Parse Error", "", "Empty query", "");
    };
    if fake.closing_shift.load(Ordering::SeqCst) {
        return result(
            "Query Executing Error",
            &format!("{cmd}\" RK7ErrorN=\"2172"),
            "UCSERR(2172)",
            "",
        );
    }
    let version = fake.version.load(Ordering::SeqCst);
    match cmd.as_str() {
        "GetSystemInfo" | "GetSystemInfo2" => {
            let shift = if cmd == "GetSystemInfo2" {
                r#"<CommonShift ShiftDate="2026-10-03T00:00:00" ShiftNum="17" ShiftStartTime="2026-10-03T08:59:00"/>"#
            } else {
                ""
            };
            result(
                "Ok",
                &cmd,
                "",
                &format!(
                    r#"<SystemInfo SystemTime="3790700931046" ReqSysVer="2" NetName="MIDSERV" ProcessID="4788" ShiftDate="2026-10-03T00:00:00" RestCode="199990093"><CashGroup id="15002" code="15002" name="MM_MID"/><Restaurant id="1001" code="1" name="Кафе «Ёлка»"/>{shift}</SystemInfo>"#
                ),
            )
        }
        "GetOrderList" => {
            if attr(query, "lastversion") == Some(version.to_string()) {
                return result(
                    "No changes",
                    &format!("{cmd}\" lastversion=\"{version}"),
                    "",
                    "",
                );
            }
            result(
                "Ok",
                &format!("{cmd}\" lastversion=\"{version}"),
                "",
                &format!(
                    r#"<Visit VisitID="477823977" guid="{{1C2F2D54-8E07-4B4B-8F60-8B22C0A6B0B1}}" Finished="0" GuestsCount="1"><Orders><Order OrderID="256" guid="{ORDER_GUID}" crc32="0" Version="{version}" OrderName="Стол 93" OrderSum="40000" ToPaySum="40000" PrepaySum="0" TableID="1000259" TableCode="93" WaiterID="1" WaiterCode="7" CreateTime="2026-10-03T16:05:00" Finished="0" Bill="0" paid="0" locked="0"/></Orders></Visit>"#
                ),
            )
        }
        "GetOrder" => {
            let by_guid = attr(query, "guid").is_some_and(|g| g == ORDER_GUID);
            let by_visit = attr(query, "visit").as_deref() == Some("477823977")
                && attr(query, "orderIdent").as_deref() == Some("256");
            if !by_guid && !by_visit {
                return result("Query Executing Error", &cmd, "Заказ не найден", "");
            }
            result(
                "Ok",
                &cmd,
                "",
                &format!(
                    r#"<Order visit="477823977" orderIdent="256" guid="{ORDER_GUID}" orderName="Стол 93" version="{version}" orderSum="40000" unpaidSum="40000" openTime="2026-10-03T16:05:00"><Waiter id="1" code="7" name="Иван"/><Session uni="1" state="1"><Dish id="1001" code="12" name="Борщ" uni="2" price="20000" amount="40000" quantity="2000"/></Session></Order>"#
                ),
            )
        }
        "GetRefData" => {
            let items = match attr(query, "RefName").as_deref() {
                Some("CASHES") => {
                    r#"<Item Ident="15003" Code="1" Name="MM_CASH" Status="rsActive" NetName="MM_CASH_169058"/>"#
                }
                Some("RESTAURANTS") => r#"<Item Ident="1001" Code="1" Name="Кафе «Ёлка»"/>"#,
                Some("EMPLOYEES") => {
                    r#"<Item Ident="1" Code="7" Name="Иван" GUIDString="{8E2A0C1B-0F0E-4C5B-9E0A-6A1B2C3D4E5F}"/><Item Ident="2" Code="8" Name="Мария"/>"#
                }
                _ => return result("Bad Query Parameters", &cmd, "Unknown reference", ""),
            };
            result(
                "Ok",
                &cmd,
                "",
                &format!(
                    r#"<RK7Reference DataVersion="5" Name="X"><Items>{items}</Items></RK7Reference>"#
                ),
            )
        }
        _ => result("Query Parse Error", &cmd, "Unknown command", ""),
    }
}

/// `<RK7QueryResult>` with the given Status; `cmd` may smuggle in more
/// attributes (it is our own text).
fn result(status: &str, cmd: &str, error: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<RK7QueryResult ServerVersion="7.6.5.92" XmlVersion="246" NetName="MIDSERV" Status="{status}" CMD="{cmd}" ErrorText="{error}" DateTime="2026-10-03T16:05:01" WorkTime="0" Processed="1">{body}</RK7QueryResult>
"#
    )
}

/// The value of the first `name="..."` in the text (the fake's queries are
/// our own, so no escaping to undo here).
fn attr(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_of_the_fake_matches_the_rfc() {
    assert_eq!(base64(""), "");
    assert_eq!(base64("f"), "Zg==");
    assert_eq!(base64("fo"), "Zm8=");
    assert_eq!(base64("foobar"), "Zm9vYmFy");
}

#[tokio::test]
async fn system_info_over_http() {
    let server = Server::start().await;
    let client = server.client();
    assert_eq!(
        client.url().as_str(),
        format!("{}/rk7api/v0/xmlinterface.xml", server.base)
    );

    let info = client.get_system_info().await.unwrap();
    assert_eq!(info.server_version.as_deref(), Some("7.6.5.92"));
    assert_eq!(
        info.rest_code.as_ref().map(|r| r.0.as_str()),
        Some("199990093")
    );
    assert_eq!(info.restaurant_name(), Some("Кафе «Ёлка»"));
    assert_eq!(info.common_shift_date(), Some(&dt("2026-10-03T00:00:00")));
    assert_eq!(info.common_shift_num(), None);

    let info = client.get_system_info2().await.unwrap();
    assert_eq!(info.common_shift_num(), Some(17));

    // Sent as XML (so the server read it), UTF-8, with a UTF-8 declaration.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "application/xml; charset=utf-8");
    assert_eq!(seen[0].1, Request::get_system_info().to_xml());
    assert!(seen[1].1.contains(r#"CMD="GetSystemInfo2""#));
}

#[tokio::test]
async fn a_wrong_password_is_http_401() {
    let server = Server::start().await;
    let client = Client::new(&server.base, USER, SecretString::from("wrong")).unwrap();
    match client.get_system_info().await {
        Err(Error::Http { status: 401 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_form_body_is_read_as_empty() {
    // What the cash server does with a body not sent as XML, seen through a
    // plain reqwest call: HTTP 200, Status "Query Parse Error".
    let server = Server::start().await;
    let client = server.client();
    let response = reqwest::Client::new()
        .post(client.url().clone())
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Request::get_system_info().to_xml())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200);
    match xmlapi::read_http_answer(status, &body, xmlapi::read_query_result) {
        Err(Error::Status(e)) => {
            assert_eq!(e.status, Status::QueryParseError);
            assert_eq!(e.error_text.as_deref(), Some("Empty query"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn order_list_then_only_changes() {
    let server = Server::start().await;
    let client = server.client();
    let list = client
        .get_order_list(&OrderListQuery::opened())
        .await
        .unwrap();
    assert!(!list.unchanged);
    assert_eq!(list.last_version, Some(100));
    let (visit, order) = list.orders().next().unwrap();
    assert_eq!(visit.visit_id, Some(477823977));
    assert_eq!(order.guid, Some(guid(ORDER_GUID)));
    assert_eq!(order.order_name.as_deref(), Some("Стол 93"));
    assert_eq!(order.to_pay_sum, Some(Kopecks(40000)));
    assert_eq!(order.create_time, Some(dt("2026-10-03T16:05:00")));
    assert!(server.seen()[0].1.contains(r#"onlyOpened="1""#));

    // Nothing changed since: "No changes", no data, the same version.
    let since = OrderListQuery::opened().changed_since(100);
    let list = client.get_order_list(&since).await.unwrap();
    assert!(list.unchanged);
    assert!(list.visits.is_empty());
    assert_eq!(list.last_version, Some(100));
    assert!(server.seen()[1].1.contains(r#"lastversion="100""#));

    // Something changed: the list again, with the new version.
    server.fake.version.store(101, Ordering::SeqCst);
    let list = client.get_order_list(&since).await.unwrap();
    assert!(!list.unchanged);
    assert_eq!(list.last_version, Some(101));
    assert_eq!(list.orders().next().unwrap().1.version, Some(101));
}

#[tokio::test]
async fn get_order_by_guid_or_visit() {
    let server = Server::start().await;
    let client = server.client();
    let order = client
        .get_order(&OrderKey::Guid(guid(ORDER_GUID)))
        .await
        .unwrap();
    assert_eq!(order.guid, Some(guid(ORDER_GUID)));
    assert_eq!(order.order_sum, Some(Kopecks(40000)));
    assert_eq!(
        order.waiter.as_ref().and_then(|w| w.name.as_deref()),
        Some("Иван")
    );
    let dish = &order.sessions[0].dishes[0];
    assert_eq!(dish.name.as_deref(), Some("Борщ"));
    assert_eq!(dish.quantity, Some(Thousandths(2000)));

    let by_visit = client
        .get_order(&OrderKey::Visit {
            visit: 477823977,
            order_ident: 256,
        })
        .await
        .unwrap();
    assert_eq!(by_visit, order);

    // An unknown order: the server's refusal, typed, with its text.
    let e = client
        .get_order(&OrderKey::Guid(guid(
            "{00000000-0000-0000-0000-000000000001}",
        )))
        .await
        .unwrap_err();
    let s = e.status().expect("a Status error");
    assert_eq!(s.status, Status::QueryExecutingError);
    assert_eq!(s.cmd.as_deref(), Some("GetOrder"));
    assert_eq!(s.error_text.as_deref(), Some("Заказ не найден"));
}

#[tokio::test]
async fn references() {
    let server = Server::start().await;
    let client = server.client();
    let all = RefDataQuery::default();

    let cashes = client.get_cashes(&all).await.unwrap();
    assert_eq!(cashes.data_version, Some(5));
    assert_eq!(cashes.items[0].ident, Some(15003));
    assert_eq!(cashes.items[0].status.as_deref(), Some("rsActive"));
    assert_eq!(
        cashes.items[0].extra.attrs,
        [("NetName".to_owned(), "MM_CASH_169058".to_owned())]
    );

    let restaurants = client.get_restaurants(&all).await.unwrap();
    assert_eq!(restaurants.items[0].name.as_deref(), Some("Кафе «Ёлка»"));

    let employees = client
        .get_employees(&RefDataQuery {
            only_active: Some(true),
            ..RefDataQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<_> = employees
        .items
        .iter()
        .filter_map(|e| e.name.as_deref())
        .collect();
    assert_eq!(names, ["Иван", "Мария"]);
    assert_eq!(
        employees.items[0].guid,
        Some(guid("{8E2A0C1B-0F0E-4C5B-9E0A-6A1B2C3D4E5F}"))
    );
    assert!(
        server.seen()[2]
            .1
            .contains(r#"RefName="EMPLOYEES" OnlyActive="1""#)
    );

    let e = client
        .get_ref_data::<RefItem>("NOSUCHREF", &all)
        .await
        .unwrap_err();
    assert_eq!(
        e.status().map(|s| &s.status),
        Some(&Status::BadQueryParameters)
    );
}

#[tokio::test]
async fn any_command_with_execute() {
    let server = Server::start().await;
    let q = server
        .client()
        .execute(&Request::get_system_info())
        .await
        .unwrap();
    assert_eq!(q.status, Status::Ok);
    assert_eq!(q.cmd.as_deref(), Some("GetSystemInfo"));
    assert_eq!(q.extra.elements[0].name, "SystemInfo");

    let e = server
        .client()
        .execute(&Request::new("NoSuchCommand"))
        .await
        .unwrap_err();
    assert_eq!(
        e.status().map(|s| &s.status),
        Some(&Status::QueryParseError)
    );
}

#[tokio::test]
async fn every_request_fails_while_the_shift_closes() {
    let server = Server::start().await;
    server.fake.closing_shift.store(true, Ordering::SeqCst);
    let e = server.client().get_system_info().await.unwrap_err();
    let s = e.status().expect("a Status error");
    assert!(s.is_shift_closing(), "{s:?}");
    assert_eq!(s.error_text.as_deref(), Some("UCSERR(2172)"));
    assert!(e.to_string().contains("RK7ErrorN 2172"), "{e}");
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let server = Server::start().await;
    server.fake.hang.store(true, Ordering::SeqCst);
    let client = server.client().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let e = client.get_system_info().await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(matches!(e, Error::Timeout(d) if d == Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(e.to_string().contains("about a minute"), "{e}");
    // The request did reach the server.
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::with_http(
        reqwest::Client::new(),
        &format!("http://{addr}/"),
        USER,
        SecretString::from(PASSWORD),
    )
    .unwrap();
    match client.get_system_info().await {
        Err(Error::Transport(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_caller_built_http_client_is_used() {
    let server = Server::start().await;
    let http = reqwest::Client::builder()
        .user_agent("tillgate-test")
        .build()
        .unwrap();
    let client = Client::with_http(http, &server.base, USER, SecretString::from(PASSWORD)).unwrap();
    assert_eq!(
        client.get_system_info().await.unwrap().net_name.as_deref(),
        Some("MIDSERV")
    );
    assert_eq!(*server.fake.agents.lock().unwrap(), ["tillgate-test"]);
}

/// A local service with a secret, counting the requests that reached it.
async fn secret_service() -> (String, Arc<AtomicI64>) {
    let hits = Arc::new(AtomicI64::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "internal_secret_token 4242"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/metrics"), hits)
}

#[tokio::test]
async fn a_redirect_is_refused_without_following_or_quoting_it() {
    let (target, hits) = secret_service().await;
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let location = target.clone();
        let app = Router::new().fallback(move || {
            let location = location.clone();
            async move { (status, [(header::LOCATION, location)], "moved") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base = format!("http://{addr}");
        let password = SecretString::from(PASSWORD);
        for client in [
            Client::new(&base, USER, password.clone()).unwrap(),
            Client::with_trust(&base, USER, password.clone(), xmlapi::Trust::Insecure).unwrap(),
        ] {
            let errors = [
                client.get_system_info().await.unwrap_err(),
                client.list_subscriptions().await.unwrap_err(),
                client
                    .subscribe("http://10.0.0.9/rkevent")
                    .await
                    .unwrap_err(),
            ];
            for e in errors {
                assert!(
                    matches!(e, Error::Redirect { status: s } if s == status.as_u16()),
                    "{e:?}"
                );
                let text = format!("{e} {e:?}");
                assert!(text.contains("redirect"), "{text}");
                assert!(
                    !text.contains("secret") && !text.contains("/metrics"),
                    "{text}"
                );
            }
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_error_page_is_not_quoted() {
    let app = Router::new().fallback(|| async {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_secret_token 4242",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new(
        &format!("http://{addr}"),
        USER,
        SecretString::from(PASSWORD),
    )
    .unwrap();
    for e in [
        client.get_system_info().await.unwrap_err(),
        client.list_subscriptions().await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::Http { status: 500 }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("secret"), "{e:?}");
    }
}

#[tokio::test]
async fn an_endless_answer_is_not_read_past_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Chunked, without a length: the limit holds while reading.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = [b"100000\r\n".as_slice(), &[b'x'; 1 << 20], b"\r\n"].concat();
        // Endless: only the client hanging up ends it.
        while s.write_all(&chunk).await.is_ok() {}
    });
    let client = Client::new(
        &format!("http://{addr}"),
        USER,
        SecretString::from(PASSWORD),
    )
    .unwrap();
    match client.get_system_info().await {
        Err(Error::TooLarge { limit }) => assert_eq!(limit, Client::MAX_BODY),
        other => panic!("{other:?}"),
    }
}
