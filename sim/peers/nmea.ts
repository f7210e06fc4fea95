/** An NMEA 0183 GPS receiver at the far end of a simulated serial line. */
import type { Timer } from '../../hal/clock.js';
import { nmeaChecksum } from '../../hal/drivers/serial-peer.js';
import type { SerialPeerLink, SerialPeerModel } from '../serial.js';

export interface NmeaPeerOptions {
  /** Default `GP` (GPS). */
  talker?: string;
  latitude?: number;
  longitude?: number;
  altitudeM?: number;
  satellites?: number;
  /** Default 1000: one fix per second, the usual rate of a GPS receiver. */
  intervalMs?: number;
}

/** A GPS receiver that sends a GGA fix sentence every interval of virtual time while the port is open. */
export class NmeaPeer implements SerialPeerModel {
  private readonly options: Required<NmeaPeerOptions>;
  private timer: Timer | undefined;
  /** Sentences sent since the port opened. */
  sent = 0;

  constructor(options: NmeaPeerOptions = {}) {
    this.options = {
      talker: 'GP',
      latitude: 48.1173,
      longitude: 11.516667,
      altitudeM: 545.4,
      satellites: 8,
      intervalMs: 1000,
      ...options,
    };
  }

  connect(link: SerialPeerLink): void {
    this.timer?.cancel();
    this.timer = link.clock.setInterval(() => {
      this.sent += 1;
      link.send(Buffer.from(this.sentence(link.clock.now()), 'latin1'));
    }, this.options.intervalMs);
  }

  disconnect(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  receive(): void {}

  /** `$GPGGA,...*hh\r\n` for the fix at `atMs`. */
  sentence(atMs: number): string {
    const { talker, latitude, longitude, altitudeM, satellites } = this.options;
    const t = new Date(atMs);
    const time = `${pad(t.getUTCHours(), 2)}${pad(t.getUTCMinutes(), 2)}${pad(t.getUTCSeconds(), 2)}.${pad(Math.floor(t.getUTCMilliseconds() / 10), 2)}`;
    const body = [
      `${talker}GGA`,
      time,
      angle(Math.abs(latitude), 2),
      latitude >= 0 ? 'N' : 'S',
      angle(Math.abs(longitude), 3),
      longitude >= 0 ? 'E' : 'W',
      '1',
      pad(satellites, 2),
      '0.9',
      altitudeM.toFixed(1),
      'M',
      '46.9',
      'M',
      '',
      '',
    ].join(',');
    return `$${body}*${nmeaChecksum(body).toString(16).toUpperCase().padStart(2, '0')}\r\n`;
  }
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Degrees as NMEA's dddmm.mmmm. */
function angle(degrees: number, degreeDigits: number): string {
  const whole = Math.floor(degrees);
  const minutes = (degrees - whole) * 60;
  return `${pad(whole, degreeDigits)}${minutes.toFixed(4).padStart(7, '0')}`;
}
