/** Whether the runtime knows an IANA time zone (or alias, such as `UTC`) by this name. */
export function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
