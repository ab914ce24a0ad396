//! The reference client program of client mode, built on intercall's generated
//! `ConformanceProxy`: it makes the plan's calls and prints one outcome line each
//! (the contract is in docs/CONFORMANCE.md).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use intercall::{ActivityId, CallContext, CallError, Invoker, Security, Streaming, UserContext};
use intercall_conformance::client_mode::plan::{Outcome, PLAN_ENV, Plan, PlanCall, SECRET_ENV, URL_ENV, item_line};
use intercall_conformance::service::{Conformance, ConformanceError, ConformanceProxy};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("conformance-rust-client: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let url = env(URL_ENV)?;
    let plan: Plan = serde_json::from_str(&env(PLAN_ENV)?).map_err(|e| format!("{PLAN_ENV}: {e}"))?;
    let security = match std::env::var_os(SECRET_ENV) {
        Some(secret) => Security::shared_secret(secret.as_encoded_bytes()).map_err(|e| e.to_string())?,
        None => Security::none(),
    };
    let invoker = Invoker::builder()
        .service("Conformance", url)
        .timeout(Duration::from_millis(plan.timeout_ms))
        .tries(3)
        // The plan retries on purpose; the budget is for outages, not for this.
        .retry_budget(1.0, 100)
        .security(security)
        .build()
        .map_err(|e| e.to_string())?;
    let proxy = ConformanceProxy::new(invoker).map_err(|e| e.to_string())?;
    let mut activities: HashMap<String, ActivityId> = HashMap::new();
    for call in &plan.calls {
        let user = match &call.user {
            None => None,
            Some(user) => Some(
                match &user.id {
                    Some(id) => UserContext::new(user.user_type.as_str(), id),
                    None => UserContext::anonymous(user.user_type.as_str()),
                }
                .map_err(|e| format!("{}: {e}", call.case))?,
            ),
        };
        let activity = call.activity.as_ref().map(|label| *activities.entry(label.clone()).or_default());
        let context = CallContext { user, activity, ..CallContext::default() };
        let outcome = context.scope(dispatch(&proxy, call)).await?;
        println!("{}", outcome.line(&call.case));
    }
    Ok(())
}

/// Calls the method the plan names with its arguments.
async fn dispatch(proxy: &ConformanceProxy, call: &PlanCall) -> Result<Outcome, String> {
    let arg = |name: &str| call.args.get(name).cloned().unwrap_or(Value::Null);
    fn decode<T: DeserializeOwned>(case: &str, value: Value) -> Result<T, String> {
        serde_json::from_value(value).map_err(|e| format!("{case}: bad argument in the plan: {e}"))
    }
    let case = call.case.as_str();
    Ok(match call.method.as_str() {
        "echo" => outcome(proxy.echo(decode(case, arg("text"))?, decode(case, arg("note"))?).await),
        "fail" => outcome(proxy.fail(decode(case, arg("variant"))?, decode(case, arg("key"))?).await),
        "count" => outcome(proxy.count(decode(case, arg("key"))?, decode(case, arg("sleep_ms"))?).await),
        "counter" => outcome(proxy.counter(decode(case, arg("key"))?).await),
        "panic" => outcome(proxy.panic(decode(case, arg("key"))?).await),
        "context" => outcome(proxy.context().await),
        "stream" => stream(case, proxy.stream(decode(case, arg("count"))?, decode(case, arg("end"))?).await).await,
        other => return Err(format!("{case}: the plan names an unknown method `{other}`")),
    })
}

fn outcome<T: Serialize>(result: Result<T, ConformanceError>) -> Outcome {
    let json = |value: &dyn erased::Json| value.to_json();
    match result {
        Ok(value) => Outcome::Ok(json(&value)),
        Err(ConformanceError::Unavailable(error)) => failure(&error),
        Err(error) => Outcome::Error(json(&error)),
    }
}

/// Prints each item as it arrives, and returns how the stream ended: `ok null` for a
/// clean end, else the error (before the first item or in place of the next one).
async fn stream(case: &str, opened: Result<Streaming<u64, ConformanceError>, ConformanceError>) -> Outcome {
    let mut items = match opened {
        Ok(items) => items,
        Err(error) => return outcome(Err::<(), _>(error)),
    };
    while let Some(item) = items.next().await {
        match item {
            Ok(item) => println!("{}", item_line(case, &Value::from(item))),
            Err(error) => return outcome(Err::<(), _>(error)),
        }
    }
    Outcome::Ok(Value::Null)
}

fn failure(error: &CallError) -> Outcome {
    let category = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_decode() {
        "decode"
    } else if error.is_status() {
        "status"
    } else {
        "other"
    };
    Outcome::Failure { category: category.to_owned(), status: error.status_code() }
}

/// Serializing through a reference without naming the type twice.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}
