//! X.509 times: UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5).

use std::time::{Duration, SystemTime};

use der::asn1::{GeneralizedTime, UtcTime};
use der::DateTime;
use x509_cert::time::{Time, Validity};

use crate::Result;

/// Clock skew allowance: certificates start this long before their issuance.
const BACKDATE: Duration = Duration::from_secs(300);

pub(crate) fn x509_time(t: SystemTime) -> Result<Time> {
    // Whole seconds only: DER times have no fractions here.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dt = DateTime::from_unix_duration(Duration::from_secs(secs))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// Validity from a few minutes ago until `days` from now.
pub(crate) fn validity_days(days: u32) -> Result<Validity> {
    let now = SystemTime::now();
    Ok(Validity {
        not_before: x509_time(now - BACKDATE)?,
        not_after: x509_time(now + Duration::from_secs(u64::from(days) * 86_400))?,
    })
}
