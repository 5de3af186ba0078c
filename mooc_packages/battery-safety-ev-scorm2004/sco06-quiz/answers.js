/* Answer key and feedback for the final quiz. (c) lms_bridge contributors, CC BY 4.0. */
window.QUIZ_KEY = {
  "q1": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Class B starts above 60 V DC (or 30 V AC rms) and goes up to 1500 V DC (1000 V AC)."
  },
  "q2": {
    "correct": [
      "c"
    ],
    "points": 1,
    "feedback": "The order is: disconnect, secure against re-connection, verify the absence of voltage, earth and short-circuit (normally not applicable to vehicles), cover adjacent live parts."
  },
  "q3": {
    "correct": [
      "a",
      "b",
      "c",
      "e"
    ],
    "points": 1,
    "feedback": "Noises, vapour, smell and a fast temperature rise are warning signs. Orange cables only mark the high-voltage wiring of every electric vehicle."
  },
  "q4": {
    "correct": [
      "a"
    ],
    "points": 1,
    "feedback": "Capacitors keep a dangerous charge after disconnection; the manufacturer states how long to wait (often 5 to 10 minutes)."
  },
  "q5": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "A zero reading only counts if the tester is shown to work before and after the measurement."
  },
  "q6": {
    "correct": [
      "a",
      "b",
      "d"
    ],
    "points": 1,
    "feedback": "Gloves, arc face shield and suitable clothing protect you; metal jewellery and watches must be taken off."
  },
  "q7": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "A visual check and an air test before every use; in addition, the periodic electrical test must not be overdue."
  },
  "q8": {
    "correct": [
      "a"
    ],
    "points": 1,
    "feedback": "The salt LiPF6 reacts with water to form hydrogen fluoride, which is highly toxic and penetrates the skin."
  },
  "q9": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "Never touch the casualty directly. Separate them safely, call 112, then give first aid (CPR and AED if needed)."
  },
  "q10": {
    "correct": [
      "b"
    ],
    "points": 1,
    "feedback": "A possibly damaged battery can go into thermal runaway hours or days later: quarantine it outdoors, monitor it, and do not charge it."
  }
};
