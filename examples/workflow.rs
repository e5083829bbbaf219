//! A Step Functions state machine run in-process and durably: an order is checked, its lines
//! priced in a Map by a Rust task handler that fails once and is retried, and the total routed
//! by a Choice. `cargo run --example workflow`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cloudlet::workflow::{StateMachineType, TaskFailure};
use cloudlet::{Cloud, ManualClock};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let cloud = Cloud::builder()
        .data_dir(dir.path())
        .clock(clock.shared())
        .build()?;
    let sfn = cloud.workflows();

    // A task handler: prices one order line; the first call fails, as a flaky service would.
    let flaked = Arc::new(AtomicBool::new(false));
    sfn.tasks().register_fn(
        "arn:aws:lambda:us-east-1:000000000000:function:price",
        move |req| {
            let flaked = flaked.clone();
            async move {
                if !flaked.swap(true, Ordering::SeqCst) {
                    return Err(TaskFailure::new("Pricing.Unavailable", "try again"));
                }
                let qty = req.input["qty"].as_f64().unwrap_or(0.0);
                let unit = req.input["unit"].as_f64().unwrap_or(0.0);
                Ok(json!({"sku": req.input["sku"], "amount": qty * unit}))
            }
        },
    );
    sfn.resume_executions();

    let definition = json!({
        "Comment": "Price an order and route it by its total",
        "StartAt": "PriceLines",
        "States": {
            "PriceLines": {
                "Type": "Map",
                "ItemsPath": "$.lines",
                "MaxConcurrency": 2,
                "ItemProcessor": {"StartAt": "Price", "States": {"Price": {
                    "Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:000000000000:function:price",
                    "Retry": [{"ErrorEquals": ["Pricing.Unavailable"], "IntervalSeconds": 2, "MaxAttempts": 3}],
                    "End": true
                }}},
                "ResultPath": "$.priced",
                "Next": "Total"
            },
            "Total": {
                "Type": "Pass",
                "Parameters": {"order.$": "$.order", "amounts.$": "$.priced[*].amount"},
                "Next": "Route"
            },
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.amounts[0]", "NumericGreaterThan": 100, "Next": "Review"}],
                "Default": "Ship"
            },
            "Review": {"Type": "Pass", "Result": "manual review", "ResultPath": "$.route", "End": true},
            "Ship": {"Type": "Pass", "Result": "ship", "ResultPath": "$.route", "End": true}
        }
    });
    let machine = sfn
        .create_state_machine(
            "orders",
            &definition.to_string(),
            StateMachineType::Standard,
        )
        .await?;
    let input = json!({"order": "o-17", "lines": [
        {"sku": "widget", "qty": 3, "unit": 12.5},
        {"sku": "gadget", "qty": 1, "unit": 99.0}
    ]});
    let arn = sfn
        .start_execution(&machine, Some("o-17"), &input.to_string())
        .await?;

    // The retry waits 2 s on the clock: advance it instead of sleeping.
    clock.wait_for_timers(1).await;
    println!("a price failed; advancing the clock by 2 s for the retry");
    clock.advance_to_next();
    let done = sfn.wait_for_execution(&arn).await?;
    println!("{} -> {:?}", done.name, done.status);
    println!("output: {}", done.output.unwrap_or_default());
    let history = sfn.get_execution_history(&arn)?;
    println!(
        "{} history events, journaled in {}",
        history.len(),
        dir.path().display()
    );
    Ok(())
}
