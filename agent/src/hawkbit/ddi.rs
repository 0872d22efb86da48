//! The hawkBit DDI resources the agent uses, as serde types, and the
//! feedback documents it sends. Reference: Eclipse hawkBit "Direct Device
//! Integration API" (`/{tenant}/controller/v1/{controllerId}` …).

use serde::{Deserialize, Serialize};

/// `GET /{tenant}/controller/v1/{controllerId}`: the root resource.
#[derive(Debug, Default, Deserialize)]
pub struct Root {
    /// `config.polling.sleep`.
    #[serde(default)]
    pub config: Option<RootConfig>,
    /// Links to what the server wants done.
    #[serde(default, rename = "_links")]
    pub links: Links,
}

/// `config` of the root resource.
#[derive(Debug, Default, Deserialize)]
pub struct RootConfig {
    /// `polling`.
    #[serde(default)]
    pub polling: Option<Polling>,
}

/// `config.polling`.
#[derive(Debug, Default, Deserialize)]
pub struct Polling {
    /// `HH:MM:SS`.
    #[serde(default)]
    pub sleep: Option<String>,
}

/// `_links` of the root resource.
#[derive(Debug, Default, Deserialize)]
pub struct Links {
    /// The server wants the device attributes.
    #[serde(default, rename = "configData")]
    pub config_data: Option<Href>,
    /// An action to install.
    #[serde(default, rename = "deploymentBase")]
    pub deployment_base: Option<Href>,
    /// An action to cancel.
    #[serde(default, rename = "cancelAction")]
    pub cancel_action: Option<Href>,
}

/// `{"href": …}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Href {
    /// The URL.
    pub href: String,
}

/// `GET …/deploymentBase/{actionId}`.
#[derive(Debug, Deserialize)]
pub struct DeploymentBase {
    /// The action id (a string in DDI).
    pub id: String,
    /// What to do.
    pub deployment: Deployment,
}

/// `deployment` of a deploymentBase.
#[derive(Debug, Deserialize)]
pub struct Deployment {
    /// `skip`, `attempt` or `forced`.
    #[serde(default = "forced")]
    pub download: String,
    /// `skip`, `attempt` or `forced` (`skip` with a download = download only).
    #[serde(default = "forced")]
    pub update: String,
    /// `available` / `unavailable` (absent: no window).
    #[serde(default, rename = "maintenanceWindow")]
    pub maintenance_window: Option<String>,
    /// Software modules.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
}

fn forced() -> String {
    "forced".into()
}

/// One software module.
#[derive(Debug, Deserialize)]
pub struct Chunk {
    /// Module version.
    #[serde(default)]
    pub version: String,
    /// Module name.
    #[serde(default)]
    pub name: String,
    /// Its files.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// One file of a chunk.
#[derive(Debug, Deserialize)]
pub struct Artifact {
    /// File name.
    pub filename: String,
    /// Hashes the server knows (`sha1`, `md5`, `sha256`; hex).
    #[serde(default)]
    pub hashes: Hashes,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// `download` (https) and/or `download-http`.
    #[serde(default, rename = "_links")]
    pub links: ArtifactLinks,
}

/// `hashes` of an artifact.
#[derive(Debug, Default, Deserialize)]
pub struct Hashes {
    /// SHA-1, hex.
    #[serde(default)]
    pub sha1: Option<String>,
    /// SHA-256, hex.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// `_links` of an artifact.
#[derive(Debug, Default, Deserialize)]
pub struct ArtifactLinks {
    /// HTTPS download.
    #[serde(default)]
    pub download: Option<Href>,
    /// Plain HTTP download.
    #[serde(default, rename = "download-http")]
    pub download_http: Option<Href>,
}

/// `GET …/cancelAction/{id}`.
#[derive(Debug, Deserialize)]
pub struct CancelAction {
    /// The cancel action's own id.
    pub id: String,
    /// `cancelAction.stopId`: the action to stop.
    #[serde(rename = "cancelAction")]
    pub cancel: CancelStop,
}

/// `cancelAction` of a cancel resource.
#[derive(Debug, Deserialize)]
pub struct CancelStop {
    /// The action id to stop.
    #[serde(rename = "stopId")]
    pub stop_id: String,
}

/// A feedback document (`POST …/feedback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// `status`.
    pub status: Status,
}

/// `status` of a feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `proceeding`, `downloaded`, `scheduled`, `closed`, …
    pub execution: String,
    /// `result`.
    pub result: Outcome,
    /// Human-readable lines (goosebit reads `Downloaded N%` from them).
    pub details: Vec<String>,
}

/// `result` of a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `none`, `success`, `failure`.
    pub finished: String,
    /// Steps done of all steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Steps>,
}

/// `progress`: `cnt` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    /// Done.
    pub cnt: u32,
    /// All.
    pub of: u32,
}

impl Feedback {
    /// A feedback with `execution`, `finished`, optional progress and one detail line.
    pub fn new(
        execution: &str,
        finished: &str,
        progress: Option<Steps>,
        detail: String,
    ) -> Feedback {
        Feedback {
            status: Status {
                execution: execution.into(),
                result: Outcome {
                    finished: finished.into(),
                    progress,
                },
                details: vec![detail],
            },
        }
    }
}

/// Parses DDI's `HH:MM:SS` sleep into seconds.
pub fn parse_sleep(s: &str) -> Option<u64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let n = |p: &str| p.parse::<u64>().ok();
    let (h, m, sec) = (n(h)?, n(m)?, n(sec)?);
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_is_parsed_and_bad_forms_refused() {
        assert_eq!(parse_sleep("00:01:00"), Some(60));
        assert_eq!(parse_sleep("12:00:05"), Some(43205));
        assert_eq!(parse_sleep("00:61:00"), None);
        assert_eq!(parse_sleep("60"), None);
        assert_eq!(parse_sleep("a:b:c"), None);
    }

    #[test]
    fn documented_deployment_base_parses() {
        // The example of the hawkBit DDI documentation, shortened.
        let j = r#"{"id":"8","deployment":{"download":"forced","update":"skip",
          "maintenanceWindow":"available","chunks":[{"part":"os","version":"1.2","name":"rootfs",
          "artifacts":[{"filename":"b.ota","hashes":{"sha1":"aa","md5":"bb","sha256":"cc"},"size":3,
          "_links":{"download":{"href":"https://h/x"},"download-http":{"href":"http://h/x"}}}]}]},
          "actionHistory":{"status":"RUNNING","messages":[]}}"#;
        let d: DeploymentBase = serde_json::from_str(j).unwrap();
        assert_eq!(d.id, "8");
        assert_eq!(d.deployment.update, "skip");
        assert_eq!(
            d.deployment.maintenance_window.as_deref(),
            Some("available")
        );
        let a = &d.deployment.chunks[0].artifacts[0];
        assert_eq!(a.hashes.sha256.as_deref(), Some("cc"));
        assert_eq!(a.links.download_http.as_ref().unwrap().href, "http://h/x");
    }

    #[test]
    fn feedback_serialises_as_ddi_expects() {
        let f = Feedback::new(
            "proceeding",
            "none",
            Some(Steps { cnt: 1, of: 4 }),
            "Downloaded 50%".into(),
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":1,"of":4}},"details":["Downloaded 50%"]}}"#
        );
    }
}
