/* Answer key and feedback for the final quiz. (c) lms_bridge contributors, CC BY 4.0. */
window.QUIZ_KEY = {
  "q1": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "The letter gives the system: P powertrain, C chassis, B body, U network communication. U0100 is a lost communication with the engine control unit."
  },
  "q2": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "The freeze frame (service 02) records conditions such as engine speed, load and temperature when the code was set."
  },
  "q3": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Scan and save the full report first. Clearing erases evidence and sets the readiness monitors to not ready."
  },
  "q4": {
    "correct": [
      "a",
      "b",
      "d"
    ],
    "points": 1,
    "feedback": "A stable supply voltage and an uninterrupted session are essential; the laptop should be on mains power."
  },
  "q5": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Security-related repair information is released only to the approved person. Sharing the credentials breaks the scheme's rules and the trust of manufacturers."
  },
  "q6": {
    "correct": [
      "a",
      "c",
      "d"
    ],
    "points": 1,
    "feedback": "Updates, screen lock and least privilege protect the laptop. Private use and cracked software bring malware into the workshop."
  },
  "q7": {
    "correct": [
      "c"
    ],
    "points": 1,
    "feedback": "Urgency plus a login link are classic signs of phishing. Use your own bookmark and report the message."
  },
  "q8": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Navigation history relates to an identifiable person (the driver) and is personal data."
  },
  "q9": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Article 33 GDPR: notify the supervisory authority within 72 hours, unless the breach is unlikely to result in a risk to people."
  },
  "q10": {
    "correct": [
      "c"
    ],
    "points": 1,
    "feedback": "Delete paired phones, navigation history and other personal settings after each customer."
  }
};
